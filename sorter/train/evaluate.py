"""Detector evaluation: COCO mAP with pycocotools (overall, per class, per size) and a confusion matrix.

Ignored ground truth (``iscrowd``: mostly hidden or out-of-frame objects,
visible fraction below one half in rendered sets) neither counts as a miss nor
turns a detection on it into a false positive: pycocotools matches detections
to crowd boxes by intersection over the detection's area and drops them. The
confusion matrix follows the same rule.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sorter.entities import Detections, ImageArray
from sorter.train.coco import coco_dict, detections_to_coco
from sorter.train.progress import Progress
from sorter.train.samples import Sample, SampleSet

log = logging.getLogger(__name__)

SIZE_BUCKETS: tuple[str, ...] = ("all", "small", "medium", "large")  # COCO area ranges, in image pixels: <32², 32²..96², >96²


def _iou_matrix(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """``(len(a), len(b))`` IoU of boxes ``(x1, y1, x2, y2)``."""
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / np.maximum(aa[:, None] + ab[None, :] - inter, 1e-9), np.float64)


def confusion_update(matrix: npt.NDArray[np.int64], sample: Sample, det: Detections, min_score: float, iou: float = 0.5) -> None:
    """Add one image to a ``(C+1, C+1)`` confusion matrix (rows truth, columns prediction, last = background).

    Detections at or above ``min_score`` are matched greedily by score to the
    best-overlapping unmatched object of any class.
    """
    bg = matrix.shape[0] - 1
    keep = det.scores >= min_score
    boxes, classes = det.boxes_px[keep], det.class_ids[keep]
    gt = sample.boxes_px[~sample.ignore]
    gcls = sample.class_ids[~sample.ignore]
    ign = sample.boxes_px[sample.ignore]
    ious = _iou_matrix(boxes, gt)
    matched = np.zeros(gt.shape[0], bool)
    for d in range(boxes.shape[0]):  # already sorted by score
        cand = np.where(matched, -1.0, ious[d]) if gt.shape[0] else np.zeros(0)
        j = int(np.argmax(cand)) if cand.size else -1
        if j >= 0 and cand[j] >= iou:
            matched[j] = True
            matrix[int(gcls[j]), int(classes[d])] += 1
            continue
        if ign.shape[0]:
            b = boxes[d]
            iw = np.clip(np.minimum(b[2], ign[:, 2]) - np.maximum(b[0], ign[:, 0]), 0, None)
            ih = np.clip(np.minimum(b[3], ign[:, 3]) - np.maximum(b[1], ign[:, 1]), 0, None)
            if float(np.max(iw * ih)) >= 0.5 * max(float((b[2] - b[0]) * (b[3] - b[1])), 1e-9):
                continue  # on an ignored object: not a false positive
        matrix[bg, int(classes[d])] += 1
    for miss in np.flatnonzero(~matched):
        matrix[int(gcls[miss]), bg] += 1


def _mean_valid(p: npt.NDArray[np.float64]) -> float | None:
    v = p[p > -1]
    return float(v.mean()) if v.size else None


def coco_map(gt: dict[str, Any], results: list[dict[str, Any]], class_names: tuple[str, ...]) -> dict[str, Any]:
    """mAP@0.5 and mAP@0.5:0.95, overall, per class and per size bucket, from pycocotools.

    Category ids are class index + 1. Values are None where there is no ground truth.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    n_gt = [0] * len(class_names)
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            n_gt[int(a["category_id"]) - 1] += 1
    out: dict[str, Any] = {"map50": 0.0, "map": 0.0, "per_class": {}, "per_size": {}}
    if not results or not gt["annotations"]:
        for k, name in enumerate(class_names):
            out["per_class"][name] = {"map50": 0.0 if n_gt[k] else None, "map": 0.0 if n_gt[k] else None, "num_gt": n_gt[k]}
        return out
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.catIds = list(range(1, len(class_names) + 1))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec: npt.NDArray[np.float64] = ev.eval["precision"]  # [T, R, K, A, M]
    out["map"] = float(ev.stats[0])
    out["map50"] = float(ev.stats[1])
    for k, name in enumerate(class_names):
        m = _mean_valid(prec[:, :, k, 0, -1])
        m50 = _mean_valid(prec[0, :, k, 0, -1])
        out["per_class"][name] = {"map50": m50, "map": m, "num_gt": n_gt[k]}
    area_rng = ev.params.areaRng
    for a, bucket in enumerate(SIZE_BUCKETS):
        lo, hi = area_rng[a]
        n = sum(1 for g in gt["annotations"] if not g.get("iscrowd", 0) and lo <= g["area"] < hi)
        out["per_size"][bucket] = {
            "map50": _mean_valid(prec[0, :, :, a, -1]),
            "map": _mean_valid(prec[:, :, :, a, -1]),
            "num_gt": n,
        }
    return out


def evaluate(
    detect: Callable[[ImageArray], Detections],
    data: SampleSet,
    class_names: tuple[str, ...],
    confusion_min_score: float = 0.3,
    desc: str = "eval",
) -> dict[str, Any]:
    """Run ``detect`` on every sample and score it.

    Args:
        detect: image -> detections (use a low score threshold, e.g. 0.01, for mAP).
        data: samples with ground truth in the same pixel frame as the detections.
        class_names: classes of ``data`` and of the detections.
        confusion_min_score: score threshold of the confusion matrix.

    Returns:
        ``map50``, ``map``, ``per_class``, ``per_size``, ``confusion_matrix`` and counts.
    """
    return evaluate_many({"model": detect}, data, class_names, confusion_min_score, desc)["model"]


def evaluate_many(
    detectors: Mapping[str, Callable[[ImageArray], Detections]],
    data: SampleSet,
    class_names: tuple[str, ...],
    confusion_min_score: float = 0.3,
    desc: str = "eval",
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate` for several detectors in one pass over ``data`` (each image is loaded or rendered once)."""
    scores = score_images(detectors, data, range(len(data)), class_names, confusion_min_score, desc)
    return summarize(scores, class_names, confusion_min_score)


@dataclass
class ImageScores:
    """Detections and ground truth of some images of a set: what :func:`summarize` needs, and what shards merge.

    Image ids are the images' positions in the whole set plus one, so the scores of contiguous shards,
    concatenated in order, are exactly the scores of one pass over the set.
    """

    results: dict[str, list[dict[str, Any]]]
    matrices: dict[str, npt.NDArray[np.int64]]
    images: list[tuple[dict[str, Any], Sample]]
    n_ignored: int = 0

    @staticmethod
    def merge(parts: Sequence[ImageScores]) -> ImageScores:
        """Shards in set order as one score."""
        names = list(parts[0].results) if parts else []
        return ImageScores(
            {n: [r for p in parts for r in p.results[n]] for n in names},
            {n: np.sum([p.matrices[n] for p in parts], axis=0).astype(np.int64) for n in names},
            [im for p in parts for im in p.images],
            sum(p.n_ignored for p in parts),
        )


def score_images(
    detectors: Mapping[str, Callable[[ImageArray], Detections]],
    data: SampleSet,
    indices: Iterable[int],
    class_names: tuple[str, ...],
    confusion_min_score: float = 0.3,
    desc: str = "eval",
) -> ImageScores:
    """Run every detector on the images at ``indices`` of ``data`` (pixels are dropped once scored)."""
    c = len(class_names)
    out = ImageScores({name: [] for name in detectors}, {name: np.zeros((c + 1, c + 1), np.int64) for name in detectors}, [])
    todo = list(indices)
    with Progress(len(todo), desc) as bar:
        for i in todo:
            s = data[i]
            image_id = i + 1
            h, w = s.image.shape[:2]
            for name, detect in detectors.items():
                det = detect(s.image)
                out.results[name].extend(detections_to_coco(image_id, det.boxes_px, det.scores, det.class_ids))
                confusion_update(out.matrices[name], s, det, confusion_min_score)
            meta = {"id": image_id, "width": int(w), "height": int(h), "file_name": str(s.image_id)}
            out.images.append((meta, _strip_image(s)))
            out.n_ignored += int(s.ignore.sum())
            bar.update()
    return out


def summarize(scores: ImageScores, class_names: tuple[str, ...], confusion_min_score: float = 0.3) -> dict[str, dict[str, Any]]:
    """COCO mAP, per class and size, and the confusion matrix of each detector from its scores."""
    gt = coco_dict(scores.images, class_names)
    out: dict[str, dict[str, Any]] = {}
    for name, results in scores.results.items():
        summary = coco_map(gt, results, class_names)
        summary["confusion_matrix"] = {
            "labels": [*class_names, "background"],
            "rows": "truth",
            "columns": "prediction",
            "iou": 0.5,
            "min_score": confusion_min_score,
            "counts": scores.matrices[name].tolist(),
        }
        summary["num_images"] = len(scores.images)
        summary["num_gt"] = int(sum(1 for a in gt["annotations"] if not a["iscrowd"]))
        summary["num_ignored"] = scores.n_ignored
        summary["num_detections"] = len(results)
        out[name] = summary
    return out


def _strip_image(s: Sample) -> Sample:
    """The sample without its pixels (keeps memory flat over a long evaluation)."""
    return Sample(np.zeros((0, 0, 3), np.uint8), s.boxes_px, s.class_ids, s.ignore, s.image_id)
