"""Per-image matching of detections to ground truth, the raw material of every honest metric. Pure numpy.

Each image is matched once (COCO rules at one IoU threshold: detections in
score order take the best-overlapping unmatched object of their class; a
detection on an ignored object, or outside the slice being scored, is dropped
rather than counted as a false positive). Metrics over any set of images,
including bootstrap resamples that repeat images, are then sums of these
per-image records, so a thousand resamples cost a thousand concatenations,
not a thousand evaluations.

The rules follow pycocotools' ``evaluateImg`` at ``maxDets = 100`` for one
IoU threshold, so :func:`average_precision` on all images equals COCOeval's
AP at that threshold (checked by a test).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: COCO area ranges (image pixels squared) of the size slices.
SIZE_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}
MAX_DETS = 100

#: Object filter of a slice: ``(boxes (N, 4) xyxy, image shape (h, w)) -> (N,) mask`` of objects inside the slice.
BoxFilter = Callable[[F32, tuple[int, int]], B]


@dataclass(frozen=True)
class ImageMatch:
    """One image's detections of one class after matching.

    Attributes:
        scores: ``(D,)`` scores of the counted detections (not ignored), in descending order.
        tp: ``(D,)`` True where the detection matched an object.
        n_gt: objects of the class that count (not ignored, inside the slice).
    """

    scores: F64
    tp: B
    n_gt: int


def iou_matrix(dt: F32, gt: F32, crowd: B) -> F64:
    """``(D, G)`` IoU; against crowd (ignored) objects, intersection over the detection's area (COCO rule)."""
    if dt.shape[0] == 0 or gt.shape[0] == 0:
        return np.zeros((dt.shape[0], gt.shape[0]))
    iw = np.clip(np.minimum(dt[:, None, 2], gt[None, :, 2]) - np.maximum(dt[:, None, 0], gt[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(dt[:, None, 3], gt[None, :, 3]) - np.maximum(dt[:, None, 1], gt[None, :, 1]), 0, None)
    inter = (iw * ih).astype(np.float64)
    a_dt = ((dt[:, 2] - dt[:, 0]) * (dt[:, 3] - dt[:, 1])).astype(np.float64)
    a_gt = ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])).astype(np.float64)
    union = np.where(crowd[None, :], a_dt[:, None], a_dt[:, None] + a_gt[None, :] - inter)
    return np.asarray(inter / np.maximum(union, 1e-12), np.float64)


def match_class(
    dt_boxes: F32,
    dt_scores: F32,
    gt_boxes: F32,
    gt_crowd: B,
    gt_in_slice: B,
    dt_in_slice: B,
    iou_threshold: float = 0.5,
) -> ImageMatch:
    """Match one image's detections of one class (COCO ``evaluateImg`` at one threshold).

    Args:
        dt_boxes: ``(D, 4)`` detections of the class.
        dt_scores: ``(D,)`` their scores.
        gt_boxes: ``(G, 4)`` objects of the class.
        gt_crowd: ``(G,)`` True for ignored objects (crowd: matched by detection area, never counted).
        gt_in_slice: ``(G,)`` False for objects outside the slice (ignored for this slice).
        dt_in_slice: ``(D,)`` False for detections outside the slice (dropped when unmatched).
        iou_threshold: IoU needed for a match.
    """
    order = np.argsort(-dt_scores, kind="mergesort")[:MAX_DETS]
    dt_boxes, dt_scores, dt_in_slice = dt_boxes[order], dt_scores[order], dt_in_slice[order]
    g_ignore = gt_crowd | ~gt_in_slice
    g_order = np.argsort(g_ignore, kind="mergesort")  # counted objects first
    gt_boxes, gt_crowd, g_ignore = gt_boxes[g_order], gt_crowd[g_order], g_ignore[g_order]
    ious = iou_matrix(dt_boxes, gt_boxes, gt_crowd)
    g_matched = np.zeros(gt_boxes.shape[0], bool)
    d_match = np.full(dt_boxes.shape[0], -1, np.int64)
    for d in range(dt_boxes.shape[0]):
        best, m = min(iou_threshold, 1 - 1e-10), -1
        for g in range(gt_boxes.shape[0]):
            if g_matched[g] and not gt_crowd[g]:
                continue
            if m > -1 and not g_ignore[m] and g_ignore[g]:
                break  # counted objects come first: an ignored one never replaces a counted match
            if ious[d, g] < best:
                continue
            best, m = ious[d, g], g
        if m >= 0:
            d_match[d] = m
            g_matched[m] = True
    matched = d_match >= 0
    g_ign_of_d = g_ignore[np.maximum(d_match, 0)] if g_ignore.size else np.zeros(d_match.shape[0], bool)
    d_ignored = np.where(matched, g_ign_of_d, ~dt_in_slice)
    keep = ~d_ignored
    return ImageMatch(dt_scores[keep].astype(np.float64), matched[keep], int((~g_ignore).sum()))


def average_precision(matches: Sequence[ImageMatch]) -> float | None:
    """COCO 101-point interpolated AP over a set of per-image matches (None when no object counts)."""
    n_gt = sum(m.n_gt for m in matches)
    if n_gt == 0:
        return None
    if not matches:
        return 0.0
    scores = np.concatenate([m.scores for m in matches])
    tp = np.concatenate([m.tp for m in matches])
    return ap_from_arrays(scores, tp, n_gt)


def ap_from_arrays(scores: F64, tp: B, n_gt: int) -> float:
    """AP from concatenated detection scores, their TP flags and the number of objects."""
    if scores.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    t = tp[order]
    tps = np.cumsum(t, dtype=np.float64)
    fps = np.cumsum(~t, dtype=np.float64)
    rc = tps / n_gt
    pr = tps / np.maximum(tps + fps, np.spacing(1))
    pr = np.maximum.accumulate(pr[::-1])[::-1]
    rec_thrs = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(rc, rec_thrs, side="left")
    q = np.where(idx < pr.size, pr[np.minimum(idx, pr.size - 1)], 0.0)
    return float(q.mean())


def box_area_filter(lo: float, hi: float) -> BoxFilter:
    """Objects whose box area lies in ``[lo, hi]`` (COCO size slices, bounds inclusive as in pycocotools)."""

    def f(boxes: F32, shape: tuple[int, int]) -> B:
        del shape
        a = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return np.asarray((a >= lo) & (a <= hi), bool)

    return f


def band_filter(k: int, n: int, axis: int = 0) -> BoxFilter:
    """Objects whose box centre lies in band ``k`` of ``n`` equal bands across the image (``axis`` 0: x, 1: y)."""

    def f(boxes: F32, shape: tuple[int, int]) -> B:
        size = shape[1] if axis == 0 else shape[0]
        c = (boxes[:, axis] + boxes[:, axis + 2]) / 2.0
        return np.asarray((c >= size * k / n) & (c < size * (k + 1) / n), bool)

    return f
