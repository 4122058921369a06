"""GenICam cameras (GigE Vision, USB3 Vision) through Aravis, behind ``FrameSource``.

Aravis is the open-source GenICam stack that industrial cameras on sorting lines
speak (Basler, FLIR, Allied Vision, Hikrobot...). It is optional: it comes from
the distribution (``apt-get install gir1.2-aravis-0.8``) with its Python binding
PyGObject (``pip install 'PyGObject<3.51'`` beside Debian 12's GLib, or the
distribution's ``python3-gi``), and is imported only when ``camera.type`` is
``aravis``.

``camera.uri`` names the camera as Aravis does (``arv-tool-0.8`` lists them):
its device id (``Basler-21234567``), its IP address for GigE Vision, or
nothing for the first camera found. Frames are stamped when Aravis completed
the buffer (its host timestamp, moved onto the sorter's monotonic clock), not
when this thread got round to it. A camera whose control link is lost (the
GigE heartbeat fails) or that stops delivering is released and reopened with
backoff, exactly like the OpenCV sources, and goes "stale" meanwhile so the
runtime pauses actuation.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, cast

import cv2
import numpy as np

from sorter.capture.backoff import Backoff
from sorter.capture.base import FrameSource, Odometer, SourceOptions, no_odometer
from sorter.capture.live import LiveSource
from sorter.entities import Frame, ImageArray
from sorter.errors import ConfigError, DeviceNotConnectedError

if TYPE_CHECKING:
    from sorter.clock import Clock
    from sorter.config import CameraConfig

log = logging.getLogger(__name__)

HINT = (
    "list the cameras with `arv-tool-0.8`; check the cable or network (a GigE camera must be on this box's subnet, "
    "with jumbo frames if it sends them) and that no other program holds the camera"
)
INSTALL = (
    "camera.type = 'aravis' needs Aravis and its Python binding: apt-get install gir1.2-aravis-0.8, and "
    "pip install 'PyGObject<3.51' (or use the distribution's python3-gi)"
)
#: GenICam pixel format -> OpenCV conversion to BGR (OpenCV names Bayer patterns one pixel further on).
_TO_BGR: dict[str, int | None] = {
    "Mono8": cv2.COLOR_GRAY2BGR,
    "RGB8": cv2.COLOR_RGB2BGR,
    "BGR8": None,
    "BayerRG8": cv2.COLOR_BayerBG2BGR,
    "BayerBG8": cv2.COLOR_BayerRG2BGR,
    "BayerGR8": cv2.COLOR_BayerGB2BGR,
    "BayerGB8": cv2.COLOR_BayerGR2BGR,
}
_N_BUFFERS = 8


def load_aravis() -> Any:
    """The ``Aravis`` GObject module.

    Raises:
        DeviceNotConnectedError: Aravis or PyGObject is missing (the message says what to install).
    """
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis
    except (ImportError, ValueError) as e:
        raise DeviceNotConnectedError(f"{INSTALL} ({e})") from e
    return Aravis


def to_bgr(data: bytes, width: int, height: int, pixel_format: str) -> np.ndarray:
    """Convert one GenICam image payload to a BGR ``uint8`` array.

    Raises:
        ValueError: the format is not supported or the payload is too short.
    """
    if pixel_format == "Mono16":
        need = width * height * 2
        if len(data) < need:
            raise ValueError(f"Mono16 image of {width}x{height} needs {need} bytes, got {len(data)}")
        mono = (np.frombuffer(data, np.uint16, width * height).reshape(height, width) >> 8).astype(np.uint8)
        return cast(np.ndarray, cv2.cvtColor(mono, cv2.COLOR_GRAY2BGR))
    if pixel_format not in _TO_BGR:
        raise ValueError(f"pixel format {pixel_format} is not supported; set the camera to one of: Mono16, {', '.join(_TO_BGR)}")
    channels = 3 if pixel_format in ("RGB8", "BGR8") else 1
    need = width * height * channels
    if len(data) < need:
        raise ValueError(f"{pixel_format} image of {width}x{height} needs {need} bytes, got {len(data)}")
    img = np.frombuffer(data, np.uint8, need).reshape((height, width, channels) if channels == 3 else (height, width))
    code = _TO_BGR[pixel_format]
    return img.copy() if code is None else cast(np.ndarray, cv2.cvtColor(img, code))


class AravisSource(LiveSource):
    """``FrameSource`` over an Aravis camera (``camera.type: aravis``).

    Args:
        cfg: camera config: ``uri`` (device id, IP address, or None for the first camera), ``width_px``,
            ``height_px`` and ``fps`` (asked of the camera; it may round them), ``stale_after_ms``.
        clock: monotonic clock of ``t_capture_ns``.
        odometer: belt odometer at a time, called in the capture thread.
        camera_id: written into every frame.
        wait_for_device: do not fail in ``start()`` when the camera is absent; keep retrying.
        backoff: reconnect policy (default: 0.1 s doubling to 5 s with 20 % jitter).
        read_timeout_s: no buffer for this long counts as a lost camera (released and reopened).
        join_timeout_s: how long ``close()`` waits for the capture thread.
    """

    def __init__(
        self,
        cfg: CameraConfig,
        clock: Clock,
        odometer: Odometer | None = None,
        *,
        camera_id: str = "cam0",
        wait_for_device: bool = False,
        backoff: Backoff | None = None,
        read_timeout_s: float = 2.0,
        join_timeout_s: float = 2.0,
    ) -> None:
        if cfg.type != "aravis":
            raise ConfigError(f"camera.type = {cfg.type!r} is not an Aravis camera")
        what = f"camera {camera_id!r} (camera.type = aravis, camera.uri = {cfg.uri!r})"
        super().__init__(cfg, clock, camera_id, what, join_timeout_s)
        self._odometer = odometer or no_odometer
        self._wait = wait_for_device
        self._backoff = backoff or Backoff()
        self._read_timeout_s = read_timeout_s
        self._incomplete = 0
        self._arv: Any = None
        self._camera: Any = None
        self._stream: Any = None
        self._control_lost = threading.Event()
        self.pixel_format = ""

    # -- FrameSource -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the camera and start the capture thread.

        Raises:
            DeviceNotConnectedError: Aravis is missing, or the camera cannot be opened (unless ``wait_for_device``).
        """
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError(f"{self._what} was already started; create a new source to start again")
        self._arv = load_aravis()
        self._t_start_ns = self._clock.now_ns()
        try:
            self._open()
        except DeviceNotConnectedError as exc:
            if not self._wait:
                raise
            log.warning("%s; waiting for the camera (wait_for_device)", exc)
            self._set("reconnecting", f"waiting for the camera: {exc}")
        self._start_thread(self._run)

    @property
    def incomplete_frames(self) -> int:
        """Buffers the camera delivered damaged (missing packets, size mismatch) and that were discarded."""
        with self._lock:
            return self._incomplete

    @property
    def ended(self) -> bool:
        """A camera never ends by itself."""
        return False

    def close(self) -> None:
        """Stop the capture thread and release the camera."""
        if not self._stop_thread():
            self._release()
        self._set("closed", "closed")

    # -- camera ------------------------------------------------------------------------------------------------------
    def _open(self) -> None:
        arv, cfg = self._arv, self._cfg
        try:
            arv.update_device_list()
            camera = arv.Camera.new(cfg.uri)
        except Exception as e:  # GLib.Error: not found, refused, already held
            found = [arv.get_device_id(i) for i in range(arv.get_n_devices())]
            raise DeviceNotConnectedError(
                f"{self._what} could not be opened ({e}); cameras found: {', '.join(found) or 'none'}; {HINT}"
            ) from e
        try:
            self._configure(camera)
            stream = camera.create_stream(None, None)
            if stream is None:
                raise DeviceNotConnectedError(f"{self._what}: no stream could be created; {HINT}")
            payload = camera.get_payload()
            for _ in range(_N_BUFFERS):
                stream.push_buffer(arv.Buffer.new_allocate(payload))
            self._control_lost.clear()
            device = camera.get_device()
            if device is not None:
                device.connect("control-lost", lambda _dev: self._control_lost.set())
            camera.start_acquisition()
        except DeviceNotConnectedError:
            raise
        except Exception as e:
            raise DeviceNotConnectedError(f"{self._what}: set-up failed ({e}); {HINT}") from e
        self._camera, self._stream = camera, stream
        region = camera.get_region()
        log.info("%s opened: %s %s (%s), %dx%d %s @ %.1f fps", self._what, camera.get_vendor_name(), camera.get_model_name(),
                 camera.get_device_id(), region.width, region.height, self.pixel_format, camera.get_frame_rate())

    def _configure(self, camera: Any) -> None:
        """Ask for the configured size, rate and a colour format; keep what the camera cannot do, and say so."""
        cfg = self._cfg
        formats = list(camera.dup_available_pixel_formats_as_strings() or [])
        for wanted in ("BayerRG8", "BayerBG8", "BayerGR8", "BayerGB8", "RGB8", "BGR8", "Mono8", "Mono16"):
            if wanted in formats:
                camera.set_pixel_format_from_string(wanted)
                break
        self.pixel_format = str(camera.get_pixel_format_as_string())
        if self.pixel_format not in _TO_BGR and self.pixel_format != "Mono16":
            raise DeviceNotConnectedError(
                f"{self._what}: pixel format {self.pixel_format} (of {', '.join(formats)}) is not supported; "
                "set the camera to Mono8, Mono16, RGB8, BGR8 or a Bayer 8-bit format"
            )
        try:
            camera.set_region(0, 0, cfg.width_px, cfg.height_px)
        except Exception as e:
            log.warning("%s: cannot set the region to %dx%d (%s); using the camera's", self._what, cfg.width_px, cfg.height_px, e)
        try:
            camera.set_frame_rate(cfg.fps)
        except Exception as e:
            log.warning("%s: cannot set %.1f fps (%s); using the camera's rate", self._what, cfg.fps, e)

    def _release(self, lost: bool = False) -> None:
        """Stop acquisition and drop the camera; a lost camera is only dropped (stopping it would wait on its timeouts)."""
        camera, self._camera, self._stream = self._camera, None, None
        if camera is not None and not lost:
            try:
                camera.stop_acquisition()
            except Exception as e:  # the camera is gone: nothing to stop
                log.debug("%s: stop_acquisition failed: %s", self._what, e)

    # -- capture thread ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            last_ok = time.monotonic()
            while not self._stop.is_set():
                if self._camera is None:
                    self._reconnect()
                    last_ok = time.monotonic()
                    continue
                if self._control_lost.is_set() or time.monotonic() - last_ok > self._read_timeout_s:
                    why = "control link lost (GigE heartbeat failed)" if self._control_lost.is_set() else (
                        f"no image for {self._read_timeout_s:g} s")
                    log.warning("%s: %s; releasing and reconnecting", self._what, why)
                    self._set("reconnecting", why)
                    t0 = time.monotonic()
                    self._release(lost=True)
                    log.debug("%s: released in %.2f s", self._what, time.monotonic() - t0)
                    continue
                if self._grab():
                    last_ok = time.monotonic()
        except Exception as exc:
            log.exception("%s: capture thread failed", self._what)
            self._set("closed", f"capture thread failed: {exc!r}")
        finally:
            self._release()
            self._slot.finish()

    def _grab(self) -> bool:
        """Wait up to 100 ms for one buffer and deliver it; True when a good frame came."""
        stream = self._stream
        buf = stream.timeout_pop_buffer(100_000)  # µs
        if buf is None:
            return False
        try:
            if buf.get_status() != self._arv.BufferStatus.SUCCESS:
                with self._lock:
                    self._incomplete += 1
                return False
            # Aravis's host stamp is wall-clock ns at buffer completion: carry its age over to the monotonic clock
            age_ns = max(0, time.time_ns() - int(buf.get_system_timestamp()))
            t_ns = self._clock.now_ns() - age_ns
            try:
                image = to_bgr(buf.get_data(), buf.get_image_width(), buf.get_image_height(), self.pixel_format)
            except ValueError as e:
                log.debug("%s: damaged frame: %s", self._what, e)
                with self._lock:
                    self._incomplete += 1
                return False
        finally:
            stream.push_buffer(buf)
        frame = Frame(cast(ImageArray, image), t_ns, float(self._odometer(t_ns)), self._index, self._camera_id)
        self._index += 1
        self._deliver_frame(frame)
        return True

    def _reconnect(self) -> None:
        if self._stop.wait(self._backoff.next_delay_s()):
            return
        try:
            self._open()
        except DeviceNotConnectedError as exc:
            with self._lock:
                lost = self._reason.split(";")[0]
            self._set("reconnecting", f"{lost}; reopen attempt {self._backoff.attempts} failed: {exc}")
            return
        log.info("%s: reopened after %d attempt(s)", self._what, self._backoff.attempts)
        self._backoff.reset()
        self._reopened()


def create(cfg: CameraConfig, clock: Clock, odometer: Odometer | None, options: SourceOptions) -> FrameSource:
    """The ``capture`` registry's factory for this source (``sorter.capture.registry.SOURCES``)."""
    return AravisSource(cfg, clock, odometer, wait_for_device=options.wait_for_device)
