"""Collect a batch from any stream of frames: detect, link or track, sample, save with metadata and pre-annotations.

The loop is deliberately plain so the running service can call the same
pieces (:class:`FrameCollector`) from its own loop: ``offer(frame,
detections, track_ids)`` returns the saved entry or None, never blocks on
anything but one PNG write of a chosen frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from sorter.entities import Detections, Frame, ImageArray
from sorter.errors import ConfigError
from sorter.train.data.batch import IMAGES_DIR, Batch, Box, FrameEntry, write_batch
from sorter.train.data.sampler import ActiveSampler, Observation, colour_feature
from sorter.train.honest import light_tag

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
Roi = tuple[int, int, int, int]


def parse_roi(text: str | None) -> Roi | None:
    """``"x,y,w,h"`` -> tuple (the belt region of the image, in pixels)."""
    if not text:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--roi {text!r}: expected X,Y,WIDTH,HEIGHT in pixels, e.g. 78,214,290,112") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise ConfigError(f"--roi {text!r}: width and height must be > 0 and x, y >= 0")
    return x, y, w, h


def crop(frame: Frame, roi: Roi | None) -> Frame:
    """The frame cut to the belt region (the detector, the batch and the labels all see the crop)."""
    if roi is None:
        return frame
    x, y, w, h = roi
    H, W = frame.image.shape[:2]
    if x + w > W or y + h > H:
        raise ConfigError(f"--roi {x},{y},{w},{h} reaches outside the {W}x{H} frame; choose a region inside it")
    img = np.ascontiguousarray(frame.image[y : y + h, x : x + w])
    return Frame(img, frame.t_capture_ns, frame.s_capture_mm, frame.frame_index, frame.camera_id)


@dataclass
class FrameCollector:
    """Saves chosen frames into a batch folder.

    Attributes:
        out_dir: the batch folder (created; must not hold a batch yet).
        class_names: the detector's classes.
        sampler: the active-learning rules, or None for an empty-belt capture.
        empty_belt: every offered frame (every ``every``-th) is saved as a known-empty hard negative.
        keep_all: every ``every``-th frame is saved unlabelled (no sampling: evaluation sets).
        every: keep every n-th frame in empty-belt and keep-all modes.
        keep_score: lowest detection score saved as a pre-annotation.
        source: where the frames come from (a file, a camera, a recording).
        recording: id of this continuous capture.
        max_frames: stop saving after this many (None: no limit).
        info: provenance stored in ``batch.json``.
    """

    out_dir: Path
    class_names: tuple[str, ...]
    sampler: ActiveSampler | None
    empty_belt: bool = False
    keep_all: bool = False
    every: int = 1
    keep_score: float = 0.1
    source: str = ""
    recording: str = ""
    max_frames: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    frames: list[FrameEntry] = field(default_factory=list)
    offered: int = 0

    def __post_init__(self) -> None:
        if (self.out_dir / "batch.json").exists():
            raise ConfigError(f"'{self.out_dir}' already holds a batch; collect into a new folder")
        (self.out_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        if self.sampler is None and not (self.empty_belt or self.keep_all):
            raise ConfigError("a collector needs a sampler, or empty_belt / keep_all")

    @property
    def full(self) -> bool:
        return self.max_frames is not None and len(self.frames) >= self.max_frames

    def offer(self, frame: Frame, det: Detections, track_ids: I64 | None = None) -> FrameEntry | None:
        """Consider one frame (in capture order); returns the saved entry when it was chosen."""
        self.offered += 1
        if self.full:
            return None
        tids = np.zeros(len(det), np.int64) if track_ids is None else np.asarray(track_ids, np.int64)
        if self.empty_belt or self.keep_all or self.sampler is None:
            if (self.offered - 1) % max(1, self.every):
                return None
            reasons: tuple[str, ...] = ("empty_belt",) if self.empty_belt else ("all",)
        else:
            assert self.sampler is not None
            obs = Observation(frame.t_capture_ns, det.scores, det.class_ids, tids, colour_feature(frame.image))
            decision = self.sampler.decide(obs)
            if not decision.chosen:
                return None
            reasons = decision.reasons
        return self._save(frame, det, tids, reasons)

    def _save(self, frame: Frame, det: Detections, tids: I64, reasons: tuple[str, ...]) -> FrameEntry:
        name = f"{IMAGES_DIR}/f{frame.frame_index:06d}.png"
        if not cv2.imwrite(str(self.out_dir / name), frame.image, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
            raise OSError(f"cannot write '{self.out_dir / name}'; check the disk and the folder's permissions")
        keep = det.scores >= self.keep_score
        preds = tuple(
            Box(tuple(float(v) for v in b), self.class_names[int(c)], float(s), int(t))  # type: ignore[arg-type]
            for b, s, c, t in zip(det.boxes_px[keep], det.scores[keep], det.class_ids[keep], tids[keep], strict=True)
        )
        h, w = frame.image.shape[:2]
        entry = FrameEntry(
            file=name,
            width_px=int(w),
            height_px=int(h),
            source=self.source,
            recording=self.recording,
            frame_index=int(frame.frame_index),
            t_capture_ns=int(frame.t_capture_ns),
            s_capture_mm=float(frame.s_capture_mm),
            reasons=reasons,
            predictions=preds,
            labels=() if self.empty_belt else None,
            tags={"light": light_tag(frame.image)},
        )
        self.frames.append(entry)
        return entry

    def finish(self) -> Batch:
        """Write ``batch.json`` and return the batch."""
        info = dict(self.info)
        info["frames_offered"] = self.offered
        if self.sampler is not None:
            info["reasons"] = dict(self.sampler.counts)
            info["capped"] = self.sampler.capped
        batch = Batch(self.out_dir, self.class_names, tuple(self.frames), info)
        write_batch(batch)
        return batch


TrackFn = Callable[[Frame, Detections], I64]


def run_collection(
    frames: Iterable[Frame],
    detect: Callable[[ImageArray], Detections],
    collector: FrameCollector,
    track: TrackFn | None = None,
    roi: Roi | None = None,
) -> Batch:
    """Feed every frame through the detector, the tracker (or linker) and the collector; returns the batch."""
    for raw in frames:
        frame = crop(raw, roi)
        det = detect(frame.image)
        ids = track(frame, det) if track is not None else None
        collector.offer(frame, det, ids)
        if collector.full:
            break
    return collector.finish()
