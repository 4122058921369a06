"""Collects what the miss taxonomy needs while a simulated line runs (``sorter run --explain``).

Per processed frame: which detection matched which true object (pixel IoU of
the detection and the object's true box), and the track the tracker gave that
detection; when each track was first confirmed; the planner's decisions and
commands; and, for the image strip, a few small views of every object (a crop
of the frame when it was rendered, else its boxes only). At the end the plant's
own records (fates, pulses, picks) complete a :class:`RunHistory` that
:func:`sorter.sim.explain.explain_run` judges.

Bounded memory: per object a handful of sightings per frame in view and at most
:data:`PANELS_PER_OBJECT` views, kept for the last :data:`MAX_OBJECTS_WITH_VIEWS` objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sorter.entities import MATERIAL_CLASSES, FireCommand, PickCommand, TrackColumns
from sorter.sim.explain_history import CommandNote, DecisionNote, RunHistory, Sighting, TrackNote

if TYPE_CHECKING:
    from sorter.runtime.pipeline import CycleResult
    from sorter.sim.plant import SimPlant

#: a detection matches a true object when their pixel boxes overlap at least this much (IoU)
MATCH_IOU = 0.3
#: views kept per object for the image strip
PANELS_PER_OBJECT = 4
#: objects whose views are kept (the most recent ones)
MAX_OBJECTS_WITH_VIEWS = 4000
#: longest side of a stored view, px
PANEL_PX = 96

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Panel:
    """One small view of one object in one frame, in the view's own pixels.

    Attributes:
        frame_index: the frame.
        image: the crop, BGR uint8, or ``None`` when the frame had no pixels (the oracle detector).
        size_px: ``(width, height)`` of the view.
        truth_box: the object's true box.
        detections: ``(box, class_id, score, track_id)`` of every detection overlapping the view.
        visible_fraction: share of the object visible.
    """

    frame_index: int
    image: npt.NDArray[np.uint8] | None
    size_px: tuple[int, int]
    truth_box: Box
    detections: tuple[tuple[Box, int, float, int], ...]
    visible_fraction: float


def match_boxes(truth_px: npt.NDArray[np.float64], det_px: npt.NDArray[np.float64], min_iou: float = MATCH_IOU) -> list[int]:
    """For each true box the index of its detection (-1 when none), greedily by IoU, one detection per object."""
    n, m = len(truth_px), len(det_px)
    out = [-1] * n
    if not n or not m:
        return out
    t = truth_px[:, None, :]
    d = det_px[None, :, :]
    iw = np.clip(np.minimum(t[..., 2], d[..., 2]) - np.maximum(t[..., 0], d[..., 0]), 0.0, None)
    ih = np.clip(np.minimum(t[..., 3], d[..., 3]) - np.maximum(t[..., 1], d[..., 1]), 0.0, None)
    inter = iw * ih
    area_t = (t[..., 2] - t[..., 0]) * (t[..., 3] - t[..., 1])
    area_d = (d[..., 2] - d[..., 0]) * (d[..., 3] - d[..., 1])
    iou = inter / np.maximum(area_t + area_d - inter, 1e-9)
    used = np.zeros(m, np.bool_)
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), m)
        if iou[i, j] < min_iou:
            break
        if out[i] < 0 and not used[j]:
            out[i] = j
            used[j] = True
    return out


@dataclass(frozen=True)
class _Dets:
    """A frame's measurements (detections scoring >= min_score) and the track each went to."""

    boxes: npt.NDArray[np.float64]
    classes: npt.NDArray[np.int32]
    scores: npt.NDArray[np.float32]
    track_ids: Sequence[int]


def make_panel(
    image: npt.NDArray[np.uint8], frame_index: int, truth_box: npt.NDArray[np.float64], visible: float, dets: _Dets
) -> Panel | None:
    """A small view around one true box: the crop (when the frame has pixels) and the boxes in its pixels."""
    has_pixels = image.ndim == 3 and image.shape[0] > 0
    h_img, w_img = (image.shape[0], image.shape[1]) if has_pixels else (10**6, 10**6)
    x1, y1, x2, y2 = (float(v) for v in truth_box)
    pad = max(24.0, 0.3 * max(x2 - x1, y2 - y1))
    cx1, cy1 = max(0, int(x1 - pad)), max(0, int(y1 - pad))
    cx2, cy2 = min(w_img, int(x2 + pad) + 1), min(h_img, int(y2 + pad) + 1)
    if cx2 - cx1 < 2 or cy2 - cy1 < 2:
        return None
    scale = PANEL_PX / max(cx2 - cx1, cy2 - cy1)
    size = (max(1, round((cx2 - cx1) * scale)), max(1, round((cy2 - cy1) * scale)))

    def local(b: Sequence[float]) -> Box:
        return ((b[0] - cx1) * scale, (b[1] - cy1) * scale, (b[2] - cx1) * scale, (b[3] - cy1) * scale)

    bx = dets.boxes
    near = (bx[:, 2] > cx1) & (bx[:, 0] < cx2) & (bx[:, 3] > cy1) & (bx[:, 1] < cy2)
    det_views = tuple(
        (local(bx[j]), int(dets.classes[j]), float(dets.scores[j]), int(dets.track_ids[j])) for j in np.flatnonzero(near).tolist()
    )
    crop: npt.NDArray[np.uint8] | None = None
    if has_pixels:
        import cv2

        crop = np.asarray(cv2.resize(image[cy1:cy2, cx1:cx2], size, interpolation=cv2.INTER_AREA), np.uint8)
    return Panel(frame_index, crop, size, local((x1, y1, x2, y2)), det_views, visible)


@dataclass
class _TrackAcc:
    first_frame: int
    last_frame: int
    confirmed_frame: int | None = None


@dataclass
class ExplainRecorder:
    """Fed by the run loop once per cycle; :meth:`history` builds the record of the run.

    Args:
        min_score: the detector's ``min_score`` (which detections became measurements).
        keep_views: keep small views of objects for the image strip.
    """

    min_score: float
    keep_views: bool = True
    sightings: dict[int, list[Sighting]] = field(default_factory=dict, init=False)
    decisions: dict[int, DecisionNote] = field(default_factory=dict, init=False)
    commands: dict[int, CommandNote] = field(default_factory=dict, init=False)
    views: dict[int, list[Panel]] = field(default_factory=dict, init=False)
    _tracks: dict[int, _TrackAcc] = field(default_factory=dict, init=False)
    _live_views: dict[int, list[Panel]] = field(default_factory=dict, init=False)

    @property
    def tracks(self) -> dict[int, TrackNote]:
        """What the tracker did with each track id so far."""
        return {tid: TrackNote(tid, a.first_frame, a.confirmed_frame, a.last_frame) for tid, a in self._tracks.items()}

    def on_cycle(self, result: CycleResult) -> None:
        """Record one processed frame."""
        frame = result.frame
        fi = frame.frame_index
        dets = result.detections
        keep = np.flatnonzero(dets.scores >= self.min_score)
        boxes = dets.boxes_px[keep].astype(np.float64)
        classes = dets.class_ids[keep]
        scores = dets.scores[keep]
        track_ids: Sequence[int] = result.meas_track_ids if len(result.meas_track_ids) == len(keep) else (0,) * len(keep)
        truth = frame.truth or ()
        truth_px = np.array([o.box_px for o in truth], np.float64).reshape(-1, 4)
        matches = match_boxes(truth_px, boxes)
        for obj, j in zip(truth, matches, strict=True):
            if j >= 0:
                s = Sighting(fi, obj.visible_fraction, int(track_ids[j]), int(classes[j]), float(scores[j]))
            else:
                s = Sighting(fi, obj.visible_fraction)
            self.sightings.setdefault(obj.object_id, []).append(s)
        live = TrackColumns.of(result.active)  # read as columns: no Track entity per live track
        ids = live.track_id.tolist() + [t.track_id for t in result.retired]
        confirmed = live.confirmed.tolist() + [t.confirmed for t in result.retired]
        for tid, is_confirmed in zip(ids, confirmed, strict=True):
            acc = self._tracks.get(tid)
            if acc is None:
                acc = self._tracks[tid] = _TrackAcc(fi, fi)
            acc.last_frame = fi
            if is_confirmed and acc.confirmed_frame is None:
                acc.confirmed_frame = fi
        for d in result.decisions:
            self._add_decision(d, fi)
        for c in result.commands:
            s_mm = c.s_open_mm if isinstance(c, FireCommand) else c.s_pick_mm if isinstance(c, PickCommand) else float("nan")
            self.commands[c.command_id] = CommandNote(c.command_id, c.track_id, fi, float(s_mm))
        if self.keep_views:
            self._add_views(result, truth, truth_px, _Dets(boxes, classes, scores, track_ids))

    def _add_decision(self, d: Any, frame_index: int) -> None:
        cmd = getattr(d, "command_id", None)
        if int(d.track_id) in self.decisions:
            return  # the planner decides once per track; the first decision is the one that acted
        self.decisions[int(d.track_id)] = DecisionNote(
            track_id=int(d.track_id),
            action=str(d.action),
            reason=str(d.reason),
            class_id=int(d.class_id),
            class_confidence=float(d.class_confidence),
            frame_index=frame_index,
            command_id=None if cmd is None else int(cmd),
        )

    def _add_views(
        self,
        result: CycleResult,
        truth: Sequence[Any],
        truth_px: npt.NDArray[np.float64],
        dets: _Dets,
    ) -> None:
        image = result.frame.image
        present = set()
        for k, obj in enumerate(truth):
            present.add(obj.object_id)
            panel = make_panel(image, result.frame.frame_index, truth_px[k], float(obj.visible_fraction), dets)
            if panel is not None:
                self._live_views.setdefault(obj.object_id, []).append(panel)
        for oid in [o for o in self._live_views if o not in present]:
            self._settle(oid)

    def _settle(self, object_id: int) -> None:
        """The object left the view: keep a few evenly spaced views of it."""
        panels = self._live_views.pop(object_id)
        clear = [p for p in panels if p.visible_fraction >= 0.25]
        panels = clear or panels
        if len(panels) > PANELS_PER_OBJECT:
            idx = np.linspace(0, len(panels) - 1, PANELS_PER_OBJECT).round().astype(int)
            panels = [panels[i] for i in idx]
        self.views[object_id] = panels
        while len(self.views) > MAX_OBJECTS_WITH_VIEWS:
            del self.views[next(iter(self.views))]

    def history(self, plant: SimPlant, target_class_ids: frozenset[int]) -> RunHistory:
        """The run's record: what was collected plus the plant's fates, pulses and picks."""
        from sorter.sim.ejector import ValveBankModel

        for oid in list(self._live_views):
            self._settle(oid)
        device = plant.device
        pulses = {p.command_id: p for p in device.executed} if isinstance(device, ValveBankModel) else {}
        picks = {} if isinstance(device, ValveBankModel) else {p.command_id: p for p in device.executed}
        tracks = self.tracks
        return RunHistory(
            target_class_ids=frozenset(target_class_ids),
            fates=plant.world.fates,
            sightings={k: tuple(v) for k, v in self.sightings.items()},
            tracks=tracks,
            decisions=dict(self.decisions),
            commands=dict(self.commands),
            pulses=pulses,
            picks=picks,
            class_names=MATERIAL_CLASSES,
        )


def explain_line(recorder: ExplainRecorder, plant: SimPlant, strip_path: Path | None = None) -> dict[str, Any]:
    """Judge a finished simulated run: the ``explain`` section of the run JSON, and the image strip when asked.

    Args:
        recorder: what the run loop collected.
        plant: the simulated plant that ran (its fates, pulses, picks and scoreboard targets).
        strip_path: where to write the PNG strip of the worst cases (``None``: none).
    """
    from sorter.actuate.base import execution_tolerance_mm
    from sorter.sim.explain import ExplainParams, explain_run, explain_summary, worst_cases

    targets = plant.scoreboard.target_class_ids if plant.scoreboard is not None else frozenset()
    # "commanded late" is what the run's counters call executed late
    params = ExplainParams(late_tolerance_mm=execution_tolerance_mm(plant.cfg.belt.encoder_counts_per_mm))
    attributions = explain_run(recorder.history(plant, targets), params)
    summary = explain_summary(attributions, MATERIAL_CLASSES)
    if strip_path is not None:
        from sorter.analytics.explain_strip import write_strip

        worst = worst_cases(attributions)
        summary["strip"] = str(write_strip(strip_path, worst, recorder.views))
        summary["strip_cases"] = [a.object_id for a in worst]
    return summary
