"""``camera.type: images``: a folder or glob of still images played as a camera.

Pull-based, without a capture thread: a folder is not a live device, so the
frame that is due is decoded when the consumer asks for it. Paced at
``camera.fps``, frames that fell due while the consumer was busy are skipped
and counted as dropped, exactly like a live camera's drop-oldest slot (and
never decoded, so a slow consumer does not pay for them). Unpaced, every image
is delivered in order. Unreadable images are skipped, counted and logged: one
bad file in a recorded set must not stop a replay.
"""

from __future__ import annotations

import glob
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, cast

import cv2

from sorter.capture.base import CaptureHealth, CaptureState, FrameSource, Odometer, SourceOptions, no_odometer
from sorter.entities import Frame, ImageArray
from sorter.errors import ConfigError, DeviceNotConnectedError

if TYPE_CHECKING:
    from sorter.clock import Clock
    from sorter.config import CameraConfig

log = logging.getLogger(__name__)

#: File name endings taken from a folder (a glob takes whatever it matches).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})


def list_images(uri: str) -> list[Path]:
    """Image files of a folder (by suffix) or of a glob pattern, sorted by name."""
    path = Path(uri).expanduser()
    if path.is_dir():
        return sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    return sorted((Path(p) for p in glob.glob(str(path)) if Path(p).is_file()), key=lambda p: p.name)


class ImageFolderSource:
    """``FrameSource`` over a sorted list of image files.

    Args:
        cfg: camera config; ``uri`` is a folder or a glob such as ``/data/run3/*.png``.
        clock: monotonic clock for pacing and ``t_capture_ns`` (stamped before decoding).
        odometer: belt odometer at a time (default: always 0 mm).
        camera_id: written into every frame.
        realtime: True paces at ``camera.fps`` (drop-oldest); False delivers every image (replay).
        loop: restart at the first image instead of ending.
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
    ) -> None:
        if not cfg.uri:
            raise ConfigError("camera.uri is required for camera.type = 'images'; set it to a folder or a glob of images")
        self._cfg, self._clock, self._odometer = cfg, clock, odometer or no_odometer
        self._camera_id, self._paced, self._loop = camera_id, realtime, loop
        self._period_ns = round(1e9 / cfg.fps)
        self._files: list[Path] = []
        self._stop = threading.Event()  # wakes a paced wait on close()
        self._t0_ns = 0
        self._slot = 0  # position in the paced schedule: image slot n is due at t0 + n * period
        self._state: CaptureState = "starting"
        self._reason = "not started"
        self._frames = self._dropped = self._unreadable = self._bad_run = 0
        self._last_t_ns: int | None = None

    def start(self) -> None:
        """List the images and start the schedule.

        Raises:
            DeviceNotConnectedError: the folder or glob matches no file.
        """
        self._files = list_images(self._cfg.uri or "")
        if not self._files:
            raise DeviceNotConnectedError(
                f"camera.uri = {self._cfg.uri!r} (camera.type = images) matches no image file; check the folder or glob "
                f"(folders take files ending in {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        log.info("image source %r: %d files from %s", self._camera_id, len(self._files), self._cfg.uri)
        self._t0_ns = self._clock.now_ns()
        self._state, self._reason = "streaming", ""

    def latest(self, timeout_s: float) -> Frame | None:
        """Return the next due image, waiting up to ``timeout_s`` for it; ``None`` on timeout, end or close."""
        deadline_ns = self._clock.now_ns() + round(timeout_s * 1e9)
        while self._state == "streaming":
            if self._paced:
                now_ns = self._clock.now_ns()
                due = (now_ns - self._t0_ns) // self._period_ns
                if due < self._slot:  # next image not due yet: wait for it, or give up at the deadline
                    due_ns = self._t0_ns + self._slot * self._period_ns
                    wake_ns = min(due_ns, deadline_ns)
                    if self._stop.wait(max(0, wake_ns - now_ns) / 1e9) or due_ns > deadline_ns:
                        return None
                    continue
                last = due if self._loop else min(due, len(self._files))  # past the end nothing is dropped
                self._dropped += max(0, last - self._slot)  # fell due while nobody asked: never decoded
                self._slot = due + 1
                position = due
            else:
                position = self._slot
                self._slot += 1
            frame = self._read(position)
            if frame is not None:
                return frame
        return None

    def _read(self, position: int) -> Frame | None:
        n = len(self._files)
        if position >= n and not self._loop:
            self._state, self._reason = "ended", f"end of the image list after {n} files"
            log.info("image source %r: %s", self._camera_id, self._reason)
            return None
        path = self._files[position % n]
        t_ns = self._clock.now_ns()  # stamp before decoding, as a camera would
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            self._unreadable += 1
            self._bad_run += 1
            if self._bad_run >= n:  # a whole pass without one readable image: stop instead of spinning
                self._state, self._reason = "ended", f"none of the {n} files could be decoded"
            log.warning("image source %r: skipping unreadable image %s (%d so far)", self._camera_id, path, self._unreadable)
            return None
        self._frames += 1
        self._bad_run = 0
        self._last_t_ns = t_ns
        # frame_index is the schedule position, so gaps show skipped (dropped or unreadable) images.
        return Frame(cast(ImageArray, image), t_ns, float(self._odometer(t_ns)), position, self._camera_id)

    @property
    def frames_dropped(self) -> int:
        """Images that fell due (paced mode) while the consumer was busy and were skipped."""
        return self._dropped

    @property
    def unreadable(self) -> int:
        """Images that could not be decoded and were skipped."""
        return self._unreadable

    @property
    def ended(self) -> bool:
        """True after the last image was delivered (``loop=False``)."""
        return self._state == "ended"

    def health(self) -> CaptureHealth:
        """Snapshot of the source (never "stale" or "reconnecting": files do not vanish mid-run here)."""
        age_ms = None if self._last_t_ns is None else (self._clock.now_ns() - self._last_t_ns) / 1e6
        reason = self._reason or (f"{self._unreadable} unreadable image(s) skipped" if self._unreadable else "")
        return CaptureHealth(self._state, reason, age_ms, self._frames, self._dropped, 0)

    def close(self) -> None:
        """Stop; a ``latest()`` waiting for the next due image returns ``None``."""
        self._stop.set()
        self._state, self._reason = "closed", "closed"


def create(cfg: CameraConfig, clock: Clock, odometer: Odometer | None, options: SourceOptions) -> FrameSource:
    """The ``capture`` registry's factory for this source (``sorter.capture.registry.SOURCES``)."""
    return ImageFolderSource(cfg, clock, odometer, realtime=options.realtime, loop=options.loop)
