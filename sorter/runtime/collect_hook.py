"""Collect frames worth labelling from the running line (``collect.dir``): the rules of ``sorter collect``, live.

The loop only hands each cycle's frame, detections and live tracks to a bounded
queue (:meth:`LiveCollector.offer`: never blocks; a full queue drops the cycle
and counts it). A thread of its own gives each detection its track id, asks the
active-learning sampler whether the frame is worth labelling, and writes the
chosen frames with their pre-annotations; :meth:`LiveCollector.close` writes the
batch (``batch.json``).

The near-threshold rule needs the boxes just *under* the line's threshold, which
the detector drops in its own post-processing. So while collecting, the
detector reports down to ``detector.min_score - collect.band`` (its own
``min_score`` attribute, lowered), and the pipeline's threshold
(``Pipeline.min_score``, applied before the tracker) stays ``detector.min_score``:
only boxes at or above it reach the tracker, and the sorting is unchanged.

Track ids per detection: a detection at or above the threshold takes the id of
the nearest live track updated in the same frame (belt position within the
tracker's gate); the rest get none.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sorter.clock import MonotonicClock
from sorter.entities import Detections, Frame, Track
from sorter.geometry import CameraModel, boxes_to_belt

if TYPE_CHECKING:
    from sorter.config import Config
    from sorter.runtime.line import Line
    from sorter.runtime.pipeline import CycleResult
    from sorter.train.data.collect import FrameCollector

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
_Item = tuple[Frame, Detections, Sequence[Track], float]  # the live tracks: the tracker's read-only columns


def match_tracks(
    camera: CameraModel, frame: Frame, det: Detections, tracks: Sequence[Track], min_score: float, gate_mm: float
) -> I64:
    """Track id of each detection (0: none): the nearest track updated at this frame within ``gate_mm`` on the belt.

    Only detections scoring at least ``min_score`` (those the tracker saw) are matched; each track takes at most one.
    """
    ids = np.zeros(len(det), np.int64)
    current = [t for t in tracks if t.t_last_ns == frame.t_capture_ns]
    keep = np.flatnonzero(det.scores >= min_score)
    if not current or keep.size == 0:
        return ids
    x, y, _length, _width = boxes_to_belt(camera, det.boxes_px[keep].astype(np.float64))
    tx = np.array([t.x_mm for t in current])
    ty = np.array([t.u_mm + t.s_ref_mm for t in current])  # belt-fixed position back to the world at this frame
    dist = np.hypot(x[:, None] - tx[None, :], y[:, None] - ty[None, :])
    taken: set[int] = set()
    for flat in np.argsort(dist, axis=None):
        i, j = divmod(int(flat), len(current))
        if dist[i, j] > gate_mm:
            break
        if ids[keep[i]] or j in taken:
            continue
        ids[keep[i]] = current[j].track_id
        taken.add(j)
    return ids


def batch_folder(parent: str | Path, line_name: str, t_wall_s: float) -> Path:
    """A new batch folder under ``collect.dir``: ``<line>-<YYYYmmdd-HHMMSS>`` (a suffix when that exists already)."""
    base = Path(parent) / f"{line_name}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(t_wall_s))}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


class LiveCollector:
    """Chooses and saves frames from the loop's cycles on a thread of its own (``start``; ``close`` writes the batch).

    Args:
        collector: the batch writer with its sampler.
        camera: the line's camera model (track matching).
        gate_mm: the tracker's association gate.
        band: the near-threshold band (the detector reports down to ``min_score - band``).
        queue_size: cycles waiting for the thread at most; more are dropped and counted.
        wait: a full queue makes ``offer`` wait instead of dropping: on simulated time (``--fast``), where nothing is
            late for waiting, so that the collector sees every cycle whatever the machine's speed.
    """

    def __init__(
        self, collector: FrameCollector, camera: CameraModel, gate_mm: float, band: float, queue_size: int, wait: bool = False
    ) -> None:
        self.wait = wait
        self.collector = collector
        self.camera = camera
        self.gate_mm = gate_mm
        self.band = band
        self._q: queue.Queue[_Item | None] = queue.Queue(queue_size)
        self.offered = 0
        self.dropped = 0
        self.no_pixels = 0
        self.errors = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._closed = False

    def start(self) -> LiveCollector:
        self._thread.start()
        return self

    @property
    def folder(self) -> Path:
        return self.collector.out_dir

    # --- main loop --------------------------------------------------------------------------------------------------
    def offer(self, result: CycleResult, min_score: float) -> None:
        """Queue one cycle (live: never blocks, a full queue drops it and counts it; with ``wait``: waits for room)."""
        if self._closed:
            return
        self.offered += 1
        if result.frame.image.size == 0:
            self.no_pixels += 1
            return
        try:
            self._q.put((result.frame, result.detections, result.active, min_score), block=self.wait)
        except queue.Full:
            self.dropped += 1

    def follow_threshold(self, line: Line, min_score: float) -> None:
        """A reload changed ``detector.min_score``: the detector reports down to the new one minus the band."""
        set_floor(line, min_score, self.band)
        sampler = self.collector.sampler
        if sampler is not None:
            sampler.cfg = replace(sampler.cfg, threshold=min_score)

    # --- the collector's thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            frame, det, tracks, min_score = item
            try:
                ids = match_tracks(self.camera, frame, det, tracks, min_score, self.gate_mm)
                self.collector.offer(frame, det, ids)
            except Exception as e:  # a full disk must not stop the line: counted, logged once in a while
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                if self.errors == 1 or self.errors % 100 == 0:
                    log.error("collect: cannot save a frame in %s (%s); %d failed so far", self.folder, e, self.errors)

    def stats(self) -> dict[str, Any]:
        """Cycles offered, frames saved, dropped (queue full), without pixels, failed writes; the batch folder."""
        return {"dir": str(self.folder), "offered": self.offered, "saved": len(self.collector.frames),
                "dropped": self.dropped, "no_pixels": self.no_pixels, "errors": self.errors,
                "queued": self._q.qsize()}

    def close(self, timeout_s: float = 10.0) -> None:
        """Save what is queued (within ``timeout_s``), then write ``batch.json``."""
        if self._closed:
            return
        self._closed = True
        self._q.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("collect: the collector's thread did not finish within %.0f s; the batch lists what it saved", timeout_s)
        self.collector.info["cycles_dropped"] = self.dropped
        batch = self.collector.finish()
        log.warning("collect: %d of %d frames kept in %s (%d dropped: the collector was busy)", len(batch.frames),
                    self.offered, self.folder, self.dropped)


def set_floor(line: Line, min_score: float, band: float) -> None:
    """Make the line's detector report boxes down to ``min_score - band`` (the pipeline still passes >= ``min_score``)."""
    if hasattr(line.detector, "min_score"):
        setattr(line.detector, "min_score", max(0.0, min_score - band))  # noqa: B010  (not part of the Detector protocol)


def start_collector(line: Line, wall_s: float | None = None) -> LiveCollector | None:
    """A :class:`LiveCollector` for ``collect.dir`` (None when it is not set); lowers the detector's floor.

    Raises:
        ConfigError: the batch folder cannot be made.
    """
    cfg: Config = line.cfg
    c = cfg.collect
    if c.dir is None:
        return None
    import shlex
    import sys

    from sorter.entities import MATERIAL_CLASSES
    from sorter.errors import ConfigError
    from sorter.train.data.collect import FrameCollector
    from sorter.train.data.sampler import ActiveSampler, NoveltyModel, SamplerConfig

    threshold = cfg.detector.min_score
    sampler = ActiveSampler(
        SamplerConfig(
            threshold=threshold,
            threshold_band=c.band,
            confident_score=c.confident_score,
            min_track_hits=c.min_track_hits,
            novelty_distance=c.novelty_distance,
            random_share=c.random_share,
            max_per_hour=c.max_per_hour,
            max_per_class_per_hour=c.max_per_class_per_hour,
            min_gap_ms=c.min_gap_ms,
            seed=c.seed,
        ),
        NoveltyModel(None),
    )
    folder = batch_folder(c.dir, cfg.line.name, time.time() if wall_s is None else wall_s)
    try:
        collector = FrameCollector(
            folder,
            MATERIAL_CLASSES,
            sampler,
            keep_score=max(0.0, threshold - c.band),
            source=str(cfg.camera.uri or cfg.camera.type),
            recording=folder.name,
            max_frames=c.max_frames,
            info={"threshold": threshold, "band": c.band, "line": cfg.line.name, "tracks": "belt tracker (live line)",
                  "detector": cfg.detector.type, "model": cfg.detector.model, "command": shlex.join(sys.argv)},
        )
    except OSError as e:
        raise ConfigError(f"collect.dir = {c.dir!r}: cannot make the batch folder {folder}: {e.strerror}; "
                          "choose a writable folder or unset collect.dir") from None
    set_floor(line, threshold, c.band)
    log.info("collect: choosing frames into %s (detector reports down to %.2f)", folder, max(0.0, threshold - c.band))
    simulated_time = not isinstance(line.clock, MonotonicClock)  # --fast or a replay: waiting costs no belt travel
    return LiveCollector(collector, line.camera, cfg.tracker.gate_mm, c.band, c.queue_size, wait=simulated_time).start()
