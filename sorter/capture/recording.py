"""Recordings: frames as a video with a sidecar of capture stamps, plus the controller's reports; and reading them back.

A recording is a folder::

    frames.avi     Motion-JPEG video of every processed frame (decodes to the same pixels every time)
    frames.csv     frame_index, t_capture_ns, s_capture_mm  (one row per video frame, in order)
    reports.csv    t_ns, command_id, status, s_actual_mm    (what the controller reported)
    meta.json      frame size, camera rate, line name, format version, and what the recording misses

Frames are encoded on a writer thread with a bounded queue, so recording
never stalls the loop: a frame that does not fit is dropped and counted. A
recording says honestly what it lacks: ``meta.json`` counts the frames the
camera captured (from the loop's own counters: processed plus dropped), those
written, those dropped (by the loop, by the recorder, without pixels), the
dropped share, the longest gap between two written frames, and ``complete``
(false as soon as one frame is missing). The recorder warns while it runs when
it starts dropping. ``sorter replay`` reads these (and the stamps themselves) to
warn on, or refuse, a recording whose gaps make its scores meaningless.
"""

from __future__ import annotations

import csv
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sorter.capture.recording_gaps import Stamp
from sorter.entities import CommandReport, Frame
from sorter.errors import ConfigError, SorterError

log = logging.getLogger(__name__)

FORMAT = 1
#: seconds between two warnings of a recording that keeps dropping frames
WARN_EVERY_S = 10.0
VIDEO, STAMPS, REPORTS, META = "frames.avi", "frames.csv", "reports.csv", "meta.json"


class RecordingError(SorterError):
    """A recording cannot be written or read."""


class RecordingWriter:
    """Writes a recording folder (which must not exist yet, or be empty) from the main loop, off the hot path."""

    def __init__(
        self,
        out_dir: str | Path,
        fps: float,
        line_name: str,
        max_queue: int = 120,
        jpeg_quality: int = 95,
        loop_counts: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        """Open the folder and start the writer thread.

        Args:
            out_dir: new (or empty) folder.
            fps: the camera's frame rate (the video's nominal rate, and the nominal gap between frames).
            line_name: ``line.name``.
            max_queue: frames waiting for the encoder at most; more are dropped and counted.
            jpeg_quality: Motion-JPEG quality.
            loop_counts: ``() -> (frames processed, frames the loop dropped)``, the run's own counters (the same ones
                its summary reports); without it only the recorder's own drops are known.
        """
        self.dir = Path(out_dir)
        if self.dir.exists() and any(self.dir.iterdir()):
            raise RecordingError(
                f"recording folder {self.dir} is not empty; choose a new folder (recordings are never overwritten)"
            )
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._stamps = (self.dir / STAMPS).open("w", newline="", encoding="utf-8")
            self._reports = (self.dir / REPORTS).open("w", newline="", encoding="utf-8")
        except OSError as e:
            raise RecordingError(f"cannot write the recording in {self.dir}: {e.strerror}; choose a writable folder") from e
        self._stamp_csv = csv.writer(self._stamps)
        self._stamp_csv.writerow(["frame_index", "t_capture_ns", "s_capture_mm"])
        self._report_csv = csv.writer(self._reports)
        self._report_csv.writerow(["t_ns", "command_id", "status", "s_actual_mm"])
        self.fps = fps
        self.line_name = line_name
        self.quality = jpeg_quality
        self._q: queue.Queue[Frame | None] = queue.Queue(max_queue)
        self._video: Any = None
        self._loop_counts = loop_counts
        self.frames_written = 0
        self.frames_dropped = 0  # by the recorder itself: queue full or a frame it could not write
        self.frames_failed = 0  # the encoder could not write them (counted with the recorder's drops)
        self.frames_without_pixels = 0  # offered with no image (a simulated line that does not render)
        self.longest_gap_ns = 0
        self._t_last_written_ns: int | None = None
        self._t_warned = float("-inf")
        self._warned_dropped = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def add_frame(self, frame: Frame) -> None:
        """Queue a frame (never blocks; a full queue drops it and counts it)."""
        if frame.image.size == 0:
            self.frames_without_pixels += 1
            return
        try:
            self._q.put_nowait(frame)
        except queue.Full:
            self.frames_dropped += 1
            self._warn_if_dropping()

    def live_counts(self) -> dict[str, int]:
        """So far: ``frames`` written, ``frames_captured`` by the camera, ``frames_dropped`` (captured, not written),
        and the part dropped by the loop, the recorder, and for lack of pixels."""
        processed, loop_dropped = self._loop_counts() if self._loop_counts is not None else (None, 0)
        own = self.frames_dropped + self.frames_failed + self.frames_without_pixels
        queued = self._q.qsize()
        written = self.frames_written
        if processed is None:  # without the loop's counters: what reached the recorder
            processed = written + own + queued
        captured = processed + loop_dropped
        return {
            "frames": written,
            "frames_captured": captured,
            "frames_dropped": max(0, captured - written - queued),
            "frames_dropped_loop": loop_dropped,
            "frames_dropped_recorder": self.frames_dropped + self.frames_failed,
            "frames_without_pixels": self.frames_without_pixels,
        }

    def _warn_if_dropping(self) -> None:
        """A warning when frames go missing, at most every ``WARN_EVERY_S`` (called from the main loop, cheap)."""
        now = time.monotonic()
        if now - self._t_warned < WARN_EVERY_S:
            return
        live = self.live_counts()
        if live["frames_dropped"] <= self._warned_dropped:
            return
        self._t_warned = now
        self._warned_dropped = live["frames_dropped"]
        log.warning(
            "recording %s is dropping frames: %d of %d captured so far (loop %d, recorder %d); the recording will be "
            "marked incomplete (a slower camera rate, a smaller frame or a faster disk help)",
            self.dir, live["frames_dropped"], live["frames_captured"], live["frames_dropped_loop"],
            live["frames_dropped_recorder"],
        )

    def poll(self) -> None:
        """Warn if frames went missing since the last warning (the loop's own drops included); cheap, main loop."""
        if self._loop_counts is not None and self._loop_counts()[1] > self._warned_dropped:
            self._warn_if_dropping()

    @property
    def pending(self) -> int:
        """Frames queued and not yet encoded."""
        return self._q.qsize()

    def add_reports(self, t_ns: int, reports: list[CommandReport]) -> None:
        for r in reports:
            self._report_csv.writerow([t_ns, r.command_id, r.status, "" if r.s_actual_mm is None else f"{r.s_actual_mm:.4f}"])

    def _run(self) -> None:
        while True:
            frame = self._q.get()
            if frame is None:
                return
            try:
                self._write(frame)
            except Exception as e:  # reported in close(), never raised into the loop
                self.error = f"{type(e).__name__}: {e}"
                self.frames_failed += 1

    def _write(self, frame: Frame) -> None:
        h, w = frame.image.shape[:2]
        if self._video is None:
            self._video = cv2.VideoWriter(str(self.dir / VIDEO), cv2.VideoWriter.fourcc(*"MJPG"), self.fps, (w, h))
            if not self._video.isOpened():
                raise RecordingError("OpenCV cannot write Motion-JPEG AVI here")
            self._video.set(cv2.VIDEOWRITER_PROP_QUALITY, self.quality)
            self._size = (w, h)
        if (w, h) != self._size:
            raise RecordingError(f"frame size changed from {self._size} to {(w, h)} during the recording")
        self._video.write(frame.image)
        self._stamp_csv.writerow([frame.frame_index, frame.t_capture_ns, f"{frame.s_capture_mm:.4f}"])
        if self._t_last_written_ns is not None:
            self.longest_gap_ns = max(self.longest_gap_ns, frame.t_capture_ns - self._t_last_written_ns)
        self._t_last_written_ns = frame.t_capture_ns
        self.frames_written += 1

    def close(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Flush and close; returns what was written (and any error)."""
        self._q.put(None)
        self._thread.join(timeout_s)
        if self._video is not None:
            self._video.release()
        self._stamps.close()
        self._reports.close()
        if self._thread.is_alive():  # the encoder could not finish in time: what is still queued is lost
            self.error = self.error or f"the encoder did not finish within {timeout_s:g} s"
            while True:
                try:
                    if self._q.get_nowait() is not None:
                        self.frames_dropped += 1
                except queue.Empty:
                    break
        live = self.live_counts()
        captured = live["frames_captured"]
        dropped = live["frames_dropped"]
        share = round(dropped / captured, 5) if captured else 0.0
        meta: dict[str, Any] = {
            "format": FORMAT,
            "line": self.line_name,
            "fps": self.fps,
            "frames": self.frames_written,
            "frames_captured": captured,
            "frames_dropped": dropped,
            "frames_dropped_loop": live["frames_dropped_loop"],
            "frames_dropped_recorder": live["frames_dropped_recorder"],
            "frames_without_pixels": live["frames_without_pixels"],
            "dropped_share": share,
            "longest_gap_ms": round(self.longest_gap_ns / 1e6, 3),
            "nominal_gap_ms": round(1000.0 / self.fps, 3) if self.fps > 0 else 0.0,
            "complete": dropped == 0 and self.error is None and self.frames_written > 0,
            "width_px": getattr(self, "_size", (0, 0))[0],
            "height_px": getattr(self, "_size", (0, 0))[1],
        }
        (self.dir / META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if self.error:
            log.error("recording %s: %s", self.dir, self.error)
        if dropped:
            log.warning(
                "recording %s is INCOMPLETE: %d of %d captured frames are missing (%.1f %%: loop %d, recorder %d, "
                "no pixels %d); longest gap %.0f ms",
                self.dir, dropped, captured, 100 * share, live["frames_dropped_loop"],
                live["frames_dropped_recorder"], live["frames_without_pixels"], meta["longest_gap_ms"],
            )
        return {**meta, "error": self.error}


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    fps: float
    frames: int
    width_px: int
    height_px: int
    line: str


def read_info(rec_dir: str | Path) -> RecordingInfo:
    d = Path(rec_dir)
    for name in (VIDEO, STAMPS, META):
        if not (d / name).is_file():
            raise ConfigError(f"{d} is not a sorter recording: {name} is missing (make one with 'sorter record')")
    meta = json.loads((d / META).read_text(encoding="utf-8"))
    version = meta.get("format")
    if version != FORMAT:
        raise ConfigError(f"recording {d} has format {version!r}; this sorter reads format {FORMAT}")
    m = meta
    return RecordingInfo(float(m["fps"]), int(m["frames"]), int(m["width_px"]), int(m["height_px"]), str(m["line"]))


class RecordingSource:
    """Frames of a recording, in order, unpaced, with their recorded stamps (for deterministic replay)."""

    def __init__(self, rec_dir: str | Path) -> None:
        self.dir = Path(rec_dir)
        self.info = read_info(self.dir)
        self.meta: dict[str, Any] = json.loads((self.dir / META).read_text(encoding="utf-8"))
        with (self.dir / STAMPS).open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        self._stamps = [(int(r["frame_index"]), int(r["t_capture_ns"]), float(r["s_capture_mm"])) for r in rows]
        self.frames_read = 0
        self._cap: Any = None
        self._k = 0
        self.ended = False

    def start(self) -> None:
        self._cap = cv2.VideoCapture(str(self.dir / VIDEO))
        if not self._cap.isOpened():
            raise RecordingError(f"cannot decode {self.dir / VIDEO}")

    def latest(self, timeout_s: float) -> Frame | None:
        del timeout_s
        if self._k >= len(self._stamps):
            self.ended = True
            return None
        ok, image = self._cap.read()
        if not ok:
            raise RecordingError(f"{self.dir / VIDEO} ends at frame {self._k} but {STAMPS} lists {len(self._stamps)} frames")
        index, t_ns, s_mm = self._stamps[self._k]
        self._k += 1
        self.frames_read = self._k
        return Frame(image=np.ascontiguousarray(image), t_capture_ns=t_ns, s_capture_mm=s_mm, frame_index=index)

    @property
    def frames_dropped(self) -> int:
        return 0

    def stamps(self) -> list[Stamp]:
        """Every recorded frame's index, capture time and odometer, in order."""
        return [Stamp(i, t, s) for i, t, s in self._stamps]

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
