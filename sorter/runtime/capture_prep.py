"""The detector's preprocessing in the capture thread, overlapping the loop's inference of the previous frame.

A live line's loop spends each cycle on inference, tracking and planning; the
crop, resize and conversion of the next frame need not wait for them. The
capture thread (a real camera's, or the simulated camera's render thread) runs
the active detector's ``prepare`` on each frame before it enters the
latest-frame slot; the loop's ``detect`` then starts from the prepared input.
OpenCV's resize and numpy's conversion release the interpreter, so on a box
with a second core the two run side by side.

A failure here never stops the camera: the frame goes on unprepared (the loop
then makes its input itself and reports any real problem) and the first
failure is logged. Frames a slow loop never takes were prepared for nothing:
that is the capture thread's time, off the loop's path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from sorter.entities import Frame
from sorter.runtime.stats import LatencyRecorder

log = logging.getLogger(__name__)


class _HasDetector(Protocol):
    detector: Any


class CapturePreparer:
    """``Frame -> Frame`` for a capture thread: the pipeline's current detector prepares each frame.

    The detector is looked up on every frame, so a model switched between frames prepares the frames after the
    switch (a frame prepared by the previous model is made again by the new one).

    Args:
        pipeline: holds ``detector`` (replaced by a model switch).
        timer_ns: the clock the preparation time is measured on.

    Attributes:
        prepared: frames prepared.
        failures: frames whose preparation raised (they went on unprepared).
    """

    def __init__(self, pipeline: _HasDetector, timer_ns: Callable[[], int] = time.perf_counter_ns) -> None:
        self._pipeline = pipeline
        self._timer_ns = timer_ns
        self._lock = threading.Lock()  # the capture thread writes, the loop's thread reads the summary
        self._latency = LatencyRecorder(capacity=100_000)
        self.prepared = 0
        self.failures = 0

    def __call__(self, frame: Frame) -> Frame:
        prepare = getattr(self._pipeline.detector, "prepare", None)
        if prepare is None or frame.image.size == 0:
            return frame
        t0 = self._timer_ns()
        try:
            out: Frame = prepare(frame)
        except Exception as e:  # the loop's detect makes the input itself and says what is wrong
            with self._lock:
                self.failures += 1
                first = self.failures == 1
            if first:
                log.warning("preprocessing in the capture thread failed (%s); the loop preprocesses meanwhile", e)
            return frame
        dt_ns = self._timer_ns() - t0
        with self._lock:
            self._latency.add("preprocess", dt_ns)
            self.prepared += 1
        return out

    def summary(self) -> dict[str, Any]:
        """Frames prepared, failures, the preparation time p50/p99 (ms) and how many the loop used or made again."""
        with self._lock:
            lat = self._latency.summary_ms().get("preprocess")
            out: dict[str, Any] = {"frames_prepared": self.prepared, "failures": self.failures}
        if lat is not None:
            out["preprocess_ms"] = {"p50": lat["p50"], "p99": lat["p99"]}
        det = self._pipeline.detector
        for key in ("prepared_used", "prepared_stale"):
            if hasattr(det, key):
                out[key] = int(getattr(det, key))
        return out


def attach_preparer(source: object, pipeline: _HasDetector, enabled: bool) -> CapturePreparer | None:
    """Have ``source``'s capture thread prepare frames for ``pipeline``'s detector, when enabled and both can.

    Returns the preparer (its ``summary`` goes into the run summary), or ``None`` when the source has no capture
    thread to run it in or the detector does not look at pixels.
    """
    set_prepare = getattr(source, "set_prepare", None)
    if not enabled or set_prepare is None or not getattr(pipeline.detector, "needs_pixels", True):
        return None
    if getattr(pipeline.detector, "prepare", None) is None:
        return None
    preparer = CapturePreparer(pipeline)
    set_prepare(preparer)
    return preparer
