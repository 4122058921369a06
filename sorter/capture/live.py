"""What the live capture sources share: the one-frame slot, their state under a lock, counters and health.

A live source (OpenCV device or stream, Aravis camera) runs one capture thread
that delivers into a :class:`FrameSlot` (drop-oldest, so a camera never waits
for processing) and records its state for :meth:`LiveSource.health`. The
subclass opens the device and runs the thread; this class keeps the
bookkeeping that must be identical for every camera, because the runtime's
actuation interlock reads it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sorter.capture.base import CaptureHealth, CaptureState, judge_health
from sorter.entities import Frame

if TYPE_CHECKING:
    from sorter.clock import Clock
    from sorter.config import CameraConfig

log = logging.getLogger(__name__)


class FrameSlot:
    """One-frame slot between the capture thread and the consumer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.finished = False  # no more frames will come (ended or closed)
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            self.dropped += self._frame is not None
            self._frame = frame
            self._cond.notify_all()

    def wait_empty(self, stop: threading.Event) -> bool:
        """Block until the consumer took the pending frame; ``False`` if stopping."""
        with self._cond:
            while self._frame is not None and not stop.is_set():
                self._cond.wait(0.05)
        return not stop.is_set()

    def take(self, timeout_s: float) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self.finished, max(0.0, timeout_s))
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    @property
    def pending(self) -> bool:
        with self._cond:
            return self._frame is not None

    def finish(self) -> None:
        with self._cond:
            self.finished = True
            self._cond.notify_all()


class LiveSource:
    """Base of the live sources: slot, state and counters, ``latest``/``health``, and the thread's stop.

    Args:
        cfg: the ``camera`` section (``stale_after_ms`` is read here).
        clock: monotonic clock of ``t_capture_ns`` and of staleness.
        camera_id: written into every frame.
        what: how messages name this camera.
        join_timeout_s: how long ``close()`` waits for the capture thread.
    """

    def __init__(self, cfg: CameraConfig, clock: Clock, camera_id: str, what: str, join_timeout_s: float) -> None:
        self._cfg, self._clock, self._camera_id, self._what = cfg, clock, camera_id, what
        self._join_timeout_s = join_timeout_s
        self._slot = FrameSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the fields health() reads
        self._state: CaptureState = "starting"
        self._reason = "not started"
        self._frames = self._reconnects = 0
        self._t_start_ns: int | None = None
        self._last_t_ns: int | None = None
        self._index = 0  # frame_index at the source, never reset
        self._prepare: Callable[[Frame], Frame] | None = None

    def latest(self, timeout_s: float) -> Frame | None:
        """Return the newest frame not returned before, waiting up to ``timeout_s``; ``None`` on timeout or end."""
        return self._slot.take(timeout_s)

    @property
    def frames_dropped(self) -> int:
        """Frames captured but overwritten before anyone read them."""
        return self._slot.dropped

    @property
    def reconnects(self) -> int:
        """Successful reopenings after the device was lost."""
        with self._lock:
            return self._reconnects

    def _staleness_applies(self) -> bool:
        """False for a source that waits on its consumer (it is never stale)."""
        return True

    def health(self) -> CaptureHealth:
        """Snapshot of the source's condition; "stale" when no frame arrived for ``camera.stale_after_ms``."""
        now_ns = self._clock.now_ns()
        with self._lock:
            state, reason, last_ns = self._state, self._reason, self._last_t_ns
            frames, reconnects = self._frames, self._reconnects
        return judge_health(state, reason, now_ns=now_ns, last_frame_ns=last_ns, started_ns=self._t_start_ns,
                            stale_after_ms=self._cfg.stale_after_ms, frames=frames, frames_dropped=self._slot.dropped,
                            reconnects=reconnects, staleness_applies=self._staleness_applies())

    def _set(self, state: CaptureState, reason: str) -> None:
        with self._lock:
            self._state, self._reason = state, reason

    def set_prepare(self, prepare: Callable[[Frame], Frame] | None) -> None:
        """Run ``prepare`` on each frame in the capture thread before it enters the slot (the detector's
        preprocessing, overlapping the loop's work on the previous frame)."""
        self._prepare = prepare

    def _deliver_frame(self, frame: Frame) -> None:
        """Count ``frame`` as captured (streaming again if it was not) and put it in the slot."""
        prepare = self._prepare
        if prepare is not None:
            frame = prepare(frame)
        with self._lock:
            self._frames += 1
            self._last_t_ns = frame.t_capture_ns
            if self._state != "streaming":
                self._state, self._reason = "streaming", ""
        self._slot.put(frame)

    def _reopened(self) -> None:
        """A reopen succeeded (the first open of a device waited for is not a reconnect)."""
        with self._lock:
            self._reconnects += self._frames > 0
            self._reason = "reopened, waiting for the first frame"

    def _start_thread(self, target: Callable[[], None]) -> None:
        self._thread = threading.Thread(target=target, name=f"capture-{self._camera_id}", daemon=True)
        self._thread.start()

    def _stop_thread(self) -> bool:
        """Stop the capture thread (joined with a timeout); True when there was one (it releases the device itself)."""
        self._stop.set()
        self._slot.finish()
        thread, self._thread = self._thread, None
        if thread is None:
            return False
        thread.join(self._join_timeout_s)
        if thread.is_alive():
            log.warning("%s: capture thread still blocked after %.1f s", self._what, self._join_timeout_s)
        return True
