"""OpenCV capture behind ``FrameSource``: V4L2 cameras, video files, RTSP streams, GStreamer pipelines.

One capture thread per camera reads continuously and keeps only the newest frame
(one slot, drop-oldest) so a live camera never waits for processing. Frames are
stamped on the injected clock right after ``grab()`` returns, before
``retrieve()`` decodes, so decode time never shifts ``t_capture_ns``. A device
that disappears is released and reopened with a backoff policy; a feed that
stops delivering turns "stale" in ``health()`` so the runtime pauses actuation
(fail safe) until fresh frames arrive.
"""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING, cast

import cv2

from sorter.capture.backoff import Backoff
from sorter.capture.base import FrameSource, Odometer, SourceOptions, no_odometer
from sorter.capture.live import LiveSource
from sorter.capture.opencv_open import HINTS as _HINTS
from sorter.capture.opencv_open import open_with_timeout
from sorter.entities import Frame, ImageArray
from sorter.errors import ConfigError, DeviceNotConnectedError

if TYPE_CHECKING:
    from sorter.clock import Clock
    from sorter.config import CameraConfig

log = logging.getLogger(__name__)

class OpenCvSource(LiveSource):
    """``FrameSource`` over ``cv2.VideoCapture`` for ``camera.type`` opencv, video, rtsp and gstreamer.

    Args:
        cfg: camera config; ``uri`` is a V4L2 index or device path (opencv), a file (video), an RTSP URL
            (rtsp) or a pipeline ending in ``appsink`` (gstreamer).
        clock: monotonic clock stamping ``t_capture_ns`` and measuring staleness.
        odometer: belt odometer at a time, called in the capture thread (must be thread-safe).
        camera_id: written into every frame.
        realtime: video files only. True: paced at the file's frame rate, drop-oldest like a camera.
            False: every frame, as fast as the consumer takes them (replay; no drops, no stale state).
        loop: video files only: restart at the end instead of ending.
        wait_for_device: do not fail in ``start()`` when the device is absent; keep retrying instead.
        backoff: reconnect policy (default: 0.1 s doubling to 5 s with 20 % jitter).
        open_timeout_s: hard bound on one open attempt, seconds.
        read_timeout_s: backend read timeout where supported (FFmpeg), so a silent stream fails instead of hanging.
        join_timeout_s: how long ``close()`` waits for the capture thread, seconds.
    """

    def __init__(
        self,
        cfg: CameraConfig,
        clock: Clock,
        odometer: Odometer | None = None,
        *,
        camera_id: str = "cam0",
        realtime: bool = True,
        loop: bool = False,
        wait_for_device: bool = False,
        backoff: Backoff | None = None,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 2.0,
        join_timeout_s: float = 2.0,
    ) -> None:
        if cfg.type not in _HINTS:
            raise ConfigError(f"camera.type = {cfg.type!r} is not an OpenCV source; valid: {', '.join(_HINTS)}")
        if cfg.uri is None and cfg.type != "opencv":
            raise ConfigError(f"camera.uri is required for camera.type = {cfg.type!r}; set it to the {cfg.type} to open")
        what = f"camera {camera_id!r} (camera.type = {cfg.type}, camera.uri = {cfg.uri!r})"
        super().__init__(cfg, clock, camera_id, what, join_timeout_s)
        self._odometer = odometer or no_odometer
        self._loop, self._wait = loop, wait_for_device
        self._is_file = cfg.type == "video"
        self._paced, self._throttled = self._is_file and realtime, self._is_file and not realtime
        self._backoff = backoff or Backoff()
        self._open_timeout_s, self._read_timeout_s = open_timeout_s, read_timeout_s
        self._cap: cv2.VideoCapture | None = None
        self._lost = ""  # why the device was lost, kept while reconnecting
        self._file_pos = 0  # frames read from the file in this pass (resume point after a reconnect)
        self._file_frames = 0  # CAP_PROP_FRAME_COUNT, 0 when unknown
        self._resuming = False  # reopened at _file_pos and no frame read yet
        self._period_ns = round(1e9 / cfg.fps)
        self._next_due_ns = 0

    # -- FrameSource -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the device and start the capture thread.

        Raises:
            DeviceNotConnectedError: the device cannot be opened (unless ``wait_for_device``), or
                ``gstreamer`` is requested from an OpenCV built without GStreamer.
        """
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError(f"{self._what} was already started; create a new source to start again")
        if self._cfg.type == "gstreamer" and not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
            raise DeviceNotConnectedError(
                f"{self._what}: this OpenCV build has no GStreamer backend (opencv-python wheels ship without it); "
                "install an OpenCV built with GStreamer (e.g. the distribution's python3-opencv), or use camera.type "
                "'opencv' or 'rtsp'"
            )
        self._t_start_ns = self._clock.now_ns()
        try:
            self._cap = self._open()
        except DeviceNotConnectedError as exc:
            if not self._wait:
                raise
            log.warning("%s; waiting for the device (wait_for_device)", exc)
            self._lost = "waiting for the device"
            self._set("reconnecting", f"{self._lost}: {exc}")
        self._start_thread(self._run)

    @property
    def ended(self) -> bool:
        """True once a video file has ended (``loop=False``) and its last frame was taken."""
        return self.health().state == "ended" and not self._slot.pending

    def _staleness_applies(self) -> bool:
        return not self._throttled  # a replayed file waits on its consumer: never stale

    def close(self) -> None:
        """Stop the capture thread (joined with a timeout) and release the device."""
        if not self._stop_thread() and self._cap is not None:
            self._cap.release()
        self._set("closed", "closed")

    # -- capture thread ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._cap is None:
                    self._reconnect()
                    continue
                if not self._pace():
                    break
                ok = self._cap.grab()
                t_ns = self._clock.now_ns()  # exposure stamp: after grab, before decode
                image = self._cap.retrieve()[1] if ok else None
                if image is None or image.size == 0:
                    if self._read_failed():
                        break
                    continue
                self._deliver(image, t_ns)
        except Exception as exc:
            log.exception("%s: capture thread failed", self._what)
            self._set("closed", f"capture thread failed: {exc!r}")
        finally:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            self._slot.finish()

    def _pace(self) -> bool:
        """Wait until the next frame is due (paced file) or the consumer took the last one (replay)."""
        if self._throttled:
            return self._slot.wait_empty(self._stop)
        if self._paced:
            wait_ns = self._next_due_ns - self._clock.now_ns()
            if wait_ns > 0 and self._stop.wait(wait_ns / 1e9):
                return False
        return not self._stop.is_set()

    def _deliver(self, image: cv2.typing.MatLike, t_ns: int) -> None:
        if image.ndim == 2:  # monochrome sensor: Frame promises BGR
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        s_mm = float(self._odometer(t_ns))
        frame = Frame(cast(ImageArray, image), t_ns, s_mm, self._index, self._camera_id)
        self._index += 1
        self._file_pos += 1
        self._resuming = False
        # Next frame one period after this one's due time; if this one came later than that, restart the schedule
        # from now (no burst of catch-up frames after a stall).
        due_ns = self._next_due_ns + self._period_ns
        self._next_due_ns = due_ns if due_ns > t_ns else t_ns + self._period_ns
        self._deliver_frame(frame)

    def _read_failed(self) -> bool:
        """Handle a failed grab/retrieve; returns True when the stream has ended for good."""
        assert self._cap is not None
        if self._is_file and (self._resuming or self._file_frames <= 0 or self._file_pos >= self._file_frames):
            if self._loop and self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                log.info("%s: end of file after %d frames, looping", self._what, self._file_pos)
                self._file_pos, self._resuming = 0, False
                return False
            self._set("ended", f"end of file after {self._file_pos} frames")
            log.info("%s: end of file after %d frames", self._what, self._file_pos)
            return True
        # A file that fails before its announced frame count broke off (truncated, network share gone): reopen and
        # resume. If the count was merely overstated, the resumed read fails at once and the file ends (above).
        if self._is_file:
            reason = f"read failed at frame {self._file_pos} of {self._file_frames}"
        else:
            reason = "read failed (device unplugged, stream interrupted or read timeout)"
        log.warning("%s: %s; releasing and reconnecting", self._what, reason)
        self._cap.release()
        self._cap = None
        self._lost = reason
        self._set("reconnecting", reason)
        return False

    def _reconnect(self) -> None:
        delay_s = self._backoff.next_delay_s()
        if self._stop.wait(delay_s):
            return
        try:
            cap = self._open()
        except DeviceNotConnectedError as exc:
            self._set("reconnecting", f"{self._lost}; reopen attempt {self._backoff.attempts} failed: {exc}")
            log.debug("reconnect attempt %d failed: %s", self._backoff.attempts, exc)
            return
        if self._is_file and self._file_pos > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, self._file_pos)  # resume where the file broke off
            self._resuming = True
        log.info("%s: reopened after %d attempt(s)", self._what, self._backoff.attempts)
        self._backoff.reset()
        self._cap = cap
        self._reopened()

    def _open(self) -> cv2.VideoCapture:
        cfg, read_ms = self._cfg, round(self._read_timeout_s * 1000)
        uri = cfg.uri or "0"
        if cfg.type == "video" and not os.path.isfile(uri):
            raise DeviceNotConnectedError(f"{self._what}: no such file; {_HINTS['video']}")
        source: str | int = int(uri) if cfg.type == "opencv" and uri.isdigit() else uri
        api, params = cv2.CAP_ANY, list[int]()
        if cfg.type == "gstreamer":
            api = cv2.CAP_GSTREAMER
        elif cfg.type != "opencv" and cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):  # honours both timeouts
            open_ms = round(self._open_timeout_s * 1000)
            api, params = cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]
        cap = open_with_timeout(lambda: cv2.VideoCapture(source, api, params), self._open_timeout_s + 1.0, self._what)
        if not cap.isOpened():
            cap.release()
            raise DeviceNotConnectedError(f"{self._what} could not be opened; {_HINTS[cfg.type]}")
        if cfg.type == "opencv":  # best effort: the driver picks the nearest mode it supports
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width_px)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height_px)
            cap.set(cv2.CAP_PROP_FPS, cfg.fps)
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms)
        if self._is_file:
            fps = cap.get(cv2.CAP_PROP_FPS)
            self._period_ns = round(1e9 / (fps if math.isfinite(fps) and 0 < fps <= 1000 else cfg.fps))
            self._file_frames = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        size = f"{cap.get(cv2.CAP_PROP_FRAME_WIDTH):.0f}x{cap.get(cv2.CAP_PROP_FRAME_HEIGHT):.0f}"
        log.info("%s opened: %s, %s @ %.1f fps", self._what, cap.getBackendName(), size, cap.get(cv2.CAP_PROP_FPS))
        return cap


def create(cfg: CameraConfig, clock: Clock, odometer: Odometer | None, options: SourceOptions) -> FrameSource:
    """The ``capture`` registry's factory for this source (``sorter.capture.registry.SOURCES``)."""
    o = options
    return OpenCvSource(cfg, clock, odometer, realtime=o.realtime, loop=o.loop, wait_for_device=o.wait_for_device)
