"""Which frames of a running line are worth labelling: active-learning rules with caps. Pure logic (numpy only).

Rules, each naming itself as a *reason* on the chosen frame:

* ``near_threshold``: a detection scores within ``threshold_band`` of the line's threshold (the model hesitates);
* ``class_flip``: a track's detections change class (the model is unsure what the object is);
* ``never_confident``: a track has been seen ``min_track_hits`` times and no detection of it reached
  ``confident_score`` (chosen once per track);
* ``novel``: the frame's colour statistics lie far from everything the training set and the already chosen
  frames hold (a new belt, new lighting, new material);
* ``random``: a random share of all frames, so the batch also shows the ordinary.

Caps keep a batch balanced and small: at most ``max_per_hour`` frames per hour of capture time, at most
``max_per_class_per_hour`` per hour for each predicted class (a frame counts for every class it shows), and
at least ``min_gap_ms`` between chosen frames. Time is the frames' own capture stamp, never the wall clock.

Tracks come from the belt tracker when the line is calibrated, or from :class:`PixelLinker` (overlap of
boxes in consecutive frames) when it is not.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

HOUR_NS = 3_600_000_000_000
REASONS = ("near_threshold", "class_flip", "never_confident", "novel", "random")


@dataclass(frozen=True)
class SamplerConfig:
    """Rules and caps of the sampler (see the module docstring).

    Attributes:
        threshold: the line's detection threshold (``detector.min_score``).
        threshold_band: half-width of the "near the threshold" band.
        confident_score: a detection at or above this is confident.
        min_track_hits: detections of a track before ``never_confident`` may fire.
        novelty_distance: feature distance (in units of the reference spread) beyond which a frame is novel.
        random_share: probability of choosing any frame at random.
        max_per_hour: chosen frames per hour of capture time.
        max_per_class_per_hour: chosen frames per predicted class per hour.
        min_gap_ms: least capture time between two chosen frames.
        seed: seed of the random share.
    """

    threshold: float = 0.3
    threshold_band: float = 0.1
    confident_score: float = 0.6
    min_track_hits: int = 5
    novelty_distance: float = 3.0
    random_share: float = 0.01
    max_per_hour: int = 600
    max_per_class_per_hour: int = 150
    min_gap_ms: float = 200.0
    seed: int = 0


@dataclass(frozen=True)
class Observation:
    """One frame as the sampler sees it.

    Attributes:
        t_capture_ns: capture stamp.
        scores: ``(N,)`` detection scores (all kept detections, including those under the threshold).
        class_ids: ``(N,)`` class ids.
        track_ids: ``(N,)`` track of each detection (0: none).
        feature: the frame's colour statistics (:func:`colour_feature`), or None to skip novelty.
    """

    t_capture_ns: int
    scores: F32
    class_ids: I32
    track_ids: I64
    feature: F32 | None = None


@dataclass(frozen=True)
class Decision:
    """Whether a frame is chosen, why, and which rules fired but were capped."""

    chosen: bool
    reasons: tuple[str, ...]
    capped: tuple[str, ...] = ()


@dataclass
class _TrackMemory:
    classes: set[int] = field(default_factory=set)
    hits: int = 0
    best: float = 0.0
    flip_done: bool = False
    unsure_done: bool = False


def colour_feature(image: npt.NDArray[np.uint8], grid: int = 2) -> F32:
    """Cheap frame statistics for novelty: mean and spread of each BGR channel over a ``grid x grid`` split.

    Computed on a 4x subsampled image (about 0.1 ms on a 1280x720 frame).
    """
    small = image[::4, ::4].astype(np.float32)
    h, w = small.shape[:2]
    parts = []
    for j in range(grid):
        for i in range(grid):
            cell = small[j * h // grid : (j + 1) * h // grid, i * w // grid : (i + 1) * w // grid].reshape(-1, 3)
            parts.append(cell.mean(0))
            parts.append(cell.std(0))
    return np.concatenate(parts).astype(np.float32)


class NoveltyModel:
    """Distance of a feature to the nearest of a set of reference features, in units of the references' spread.

    Args:
        reference: ``(M, F)`` features of frames the model already knows (the training set); may be empty.
        spread_floor: smallest per-dimension spread (grey levels), so a uniform reference does not make every
            frame novel.
    """

    def __init__(self, reference: F32 | None = None, spread_floor: float = 4.0) -> None:
        ref = np.zeros((0, 0), np.float32) if reference is None else np.asarray(reference, np.float32)
        self._ref: list[F32] = [r for r in ref] if ref.size else []
        self._floor = spread_floor
        self._scale: F32 | None = None
        if len(self._ref) >= 2:
            self._scale = np.maximum(np.std(np.stack(self._ref), axis=0), spread_floor).astype(np.float32)

    def distance(self, feature: F32) -> float:
        """Normalised distance to the nearest reference (``inf`` when there is none yet)."""
        if not self._ref:
            return float("inf")
        scale = self._scale if self._scale is not None else np.full(feature.shape, self._floor * 4, np.float32)
        d = (np.stack(self._ref) - feature[None, :]) / scale[None, :]
        return float(np.sqrt((d * d).mean(axis=1)).min())

    def add(self, feature: F32) -> None:
        """Remember a chosen frame so that its look is no longer novel."""
        self._ref.append(np.asarray(feature, np.float32))


class ActiveSampler:
    """Decides frame by frame (in capture order) which frames to keep."""

    def __init__(self, config: SamplerConfig, novelty: NoveltyModel | None = None) -> None:
        self.cfg = config
        self.novelty = novelty
        self._rng = np.random.default_rng(config.seed)
        self._tracks: dict[int, _TrackMemory] = defaultdict(_TrackMemory)
        self._chosen: deque[int] = deque()
        self._per_class: dict[int, deque[int]] = defaultdict(deque)
        self._last_ns: int | None = None
        self.counts: dict[str, int] = {r: 0 for r in REASONS}
        self.capped = 0

    def _rules(self, obs: Observation) -> list[str]:
        cfg = self.cfg
        reasons = []
        if obs.scores.size and bool((np.abs(obs.scores - cfg.threshold) <= cfg.threshold_band).any()):
            reasons.append("near_threshold")
        flip = unsure = False
        for tid, score, cls in zip(obs.track_ids.tolist(), obs.scores.tolist(), obs.class_ids.tolist(), strict=True):
            if tid <= 0 or score < cfg.threshold - cfg.threshold_band:
                continue
            m = self._tracks[tid]
            m.hits += 1
            m.best = max(m.best, score)
            m.classes.add(cls)
            if len(m.classes) > 1 and not m.flip_done:
                m.flip_done = flip = True
            if m.hits >= cfg.min_track_hits and m.best < cfg.confident_score and not m.unsure_done:
                m.unsure_done = unsure = True
        if flip:
            reasons.append("class_flip")
        if unsure:
            reasons.append("never_confident")
        if obs.feature is not None and self.novelty is not None and self.novelty.distance(obs.feature) > cfg.novelty_distance:
            reasons.append("novel")
        if cfg.random_share > 0 and self._rng.random() < cfg.random_share:
            reasons.append("random")
        return reasons

    def _within_caps(self, obs: Observation) -> bool:
        cfg = self.cfg
        t = obs.t_capture_ns
        if self._last_ns is not None and (t - self._last_ns) < cfg.min_gap_ms * 1e6:
            return False
        while self._chosen and t - self._chosen[0] >= HOUR_NS:
            self._chosen.popleft()
        if len(self._chosen) >= cfg.max_per_hour:
            return False
        classes = set(obs.class_ids[obs.scores >= cfg.threshold - cfg.threshold_band].tolist())
        for c in classes:
            q = self._per_class[c]
            while q and t - q[0] >= HOUR_NS:
                q.popleft()
            if len(q) >= cfg.max_per_class_per_hour:
                return False
        return True

    def _take(self, obs: Observation) -> None:
        t = obs.t_capture_ns
        self._last_ns = t
        self._chosen.append(t)
        for c in set(obs.class_ids[obs.scores >= self.cfg.threshold - self.cfg.threshold_band].tolist()):
            self._per_class[c].append(t)
        if obs.feature is not None and self.novelty is not None:
            self.novelty.add(obs.feature)

    def decide(self, obs: Observation) -> Decision:
        """Apply the rules and caps to the next frame."""
        reasons = self._rules(obs)
        if not reasons:
            return Decision(False, ())
        if not self._within_caps(obs):
            self.capped += 1
            return Decision(False, (), tuple(reasons))
        self._take(obs)
        for r in reasons:
            self.counts[r] += 1
        return Decision(True, tuple(reasons))

    def forget_tracks(self, track_ids: Sequence[int]) -> None:
        """Drop the memory of finished tracks (keeps memory flat on a long run)."""
        for tid in track_ids:
            self._tracks.pop(int(tid), None)


class PixelLinker:
    """Links detections of consecutive frames by box overlap: tracks for an uncalibrated camera.

    A detection continues the track of the previous frame's detection it overlaps most (IoU at least
    ``min_iou``, each previous detection used once); otherwise it starts a new track. Tracks unseen for
    ``max_gap_frames`` frames end.
    """

    def __init__(self, min_iou: float = 0.3, max_gap_frames: int = 3) -> None:
        self.min_iou = min_iou
        self.max_gap = max_gap_frames
        self._boxes = np.zeros((0, 4), np.float32)
        self._ids = np.zeros(0, np.int64)
        self._age = np.zeros(0, np.int64)
        self._next = 1

    def update(self, boxes_px: F32) -> tuple[I64, list[int]]:
        """Track id per box of this frame, and the ids of tracks that ended."""
        from sorter.train.matching import iou_matrix

        b = np.asarray(boxes_px, np.float32).reshape(-1, 4)
        ids = np.zeros(b.shape[0], np.int64)
        ious = iou_matrix(b, self._boxes, np.zeros(self._boxes.shape[0], bool))
        used = np.zeros(self._boxes.shape[0], bool)
        for d in np.argsort(-ious.max(axis=1) if ious.size else np.zeros(b.shape[0])):
            if ious.size:
                cand = np.where(used, -1.0, ious[d])
                j = int(np.argmax(cand))
                if cand[j] >= self.min_iou:
                    ids[d] = self._ids[j]
                    used[j] = True
                    continue
            ids[d] = self._next
            self._next += 1
        keep_old = ~used & (self._age + 1 <= self.max_gap)
        ended = self._ids[~used & ~keep_old].tolist()
        self._boxes = np.concatenate([b, self._boxes[keep_old]])
        self._ids = np.concatenate([ids, self._ids[keep_old]])
        self._age = np.concatenate([np.zeros(b.shape[0], np.int64), self._age[keep_old] + 1])
        return ids, ended
