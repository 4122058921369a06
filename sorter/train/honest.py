"""Honest evaluation: AP@0.5 per class, size and condition slice with bootstrap intervals, calibration, bare-belt false
positives, and a paired comparison of two models on the same images. Pure numpy (detections come in already computed).

Slices (each scored like COCO's size ranges: objects outside the slice are
ignored, detections outside it are dropped unless they match a counted object):

* ``size=small|medium|large``: COCO box-area ranges in image pixels;
* ``region=left|centre|right``: where the box centre lies across the image (the belt's width);
* ``light=dark|normal|bright``: the image's mean luma (below 70, above 170);
* ``<tag>=<value>``: any image tag of the dataset (a recording, a shift, a lighting note);
* ``state=<value>``: an object attribute set when labelling (``crumpled``, ``flat``...).

Calibration: every detection at or above ``ece_min_score`` counts as correct
when it matches an object of its class at IoU 0.5; the expected calibration
error is the mean gap between score and that accuracy over ten score bins,
weighted by the detections in each bin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from sorter.train.bootstrap import ClassTable, estimate, mean_ap, paired_difference, resample_weights, weighted_ap
from sorter.train.matching import SIZE_RANGES, BoxFilter, ImageMatch, band_filter, box_area_filter, match_class

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
B = npt.NDArray[np.bool_]

DARK_LUMA, BRIGHT_LUMA = 70.0, 170.0
REGIONS = ("left", "centre", "right")


@dataclass(frozen=True)
class ScoredImage:
    """One image's ground truth and a model's detections on it (image pixels).

    Attributes:
        shape: ``(height, width)`` in pixels.
        gt_boxes: ``(G, 4)`` objects ``(x1, y1, x2, y2)``.
        gt_classes: ``(G,)`` class ids.
        gt_ignore: ``(G,)`` ignored objects (crowd: neither rewarded nor penalised).
        dt_boxes: ``(D, 4)`` detections.
        dt_scores: ``(D,)`` scores.
        dt_classes: ``(D,)`` class ids.
        tags: image-level conditions, e.g. ``{"light": "dark", "recording": "rec1"}``.
        gt_attrs: per-object attributes (``state``...), one mapping per object.
    """

    shape: tuple[int, int]
    gt_boxes: F32
    gt_classes: I32
    gt_ignore: B
    dt_boxes: F32
    dt_scores: F32
    dt_classes: I32
    tags: dict[str, str] = field(default_factory=dict)
    gt_attrs: tuple[dict[str, str], ...] = ()

    @property
    def is_negative(self) -> bool:
        """No counted object in the image (bare belt)."""
        return not bool((~self.gt_ignore).any())


def light_tag(image: npt.NDArray[np.uint8]) -> str:
    """``dark``, ``normal`` or ``bright`` from the mean luma of a BGR image."""
    b, g, r = (float(image[..., k].mean()) for k in range(3))
    luma = 0.114 * b + 0.587 * g + 0.299 * r
    return "dark" if luma < DARK_LUMA else "bright" if luma > BRIGHT_LUMA else "normal"


@dataclass(frozen=True)
class Slice:
    """A subset to score: images (by tag), objects (by box) and/or objects (by attribute)."""

    name: str
    image_tag: tuple[str, str] | None = None
    box_filter: BoxFilter | None = None
    attr: tuple[str, str] | None = None


def default_slices(images: Sequence[ScoredImage]) -> list[Slice]:
    """``all``, sizes, regions, then every image tag value and object attribute value present."""
    out = [Slice("all")]
    out += [Slice(f"size={k}", box_filter=box_area_filter(*SIZE_RANGES[k])) for k in ("small", "medium", "large")]
    out += [Slice(f"region={name}", box_filter=band_filter(k, 3, axis=0)) for k, name in enumerate(REGIONS)]
    tags = sorted({(k, v) for im in images for k, v in im.tags.items()})
    out += [Slice(f"{k}={v}", image_tag=(k, v)) for k, v in tags]
    attrs = sorted({(k, v) for im in images for a in im.gt_attrs for k, v in a.items()})
    out += [Slice(f"{k}={v}", attr=(k, v)) for k, v in attrs]
    return out


def _match_image(im: ScoredImage, c: int, sl: Slice, iou: float) -> ImageMatch:
    gsel = im.gt_classes == c
    dsel = im.dt_classes == c
    gb, db = im.gt_boxes[gsel], im.dt_boxes[dsel]
    g_in = np.ones(gb.shape[0], bool)
    d_in = np.ones(db.shape[0], bool)
    if sl.box_filter is not None:
        g_in &= sl.box_filter(gb, im.shape)
        d_in &= sl.box_filter(db, im.shape)
    if sl.attr is not None:
        key, value = sl.attr
        attrs = [im.gt_attrs[i] if i < len(im.gt_attrs) else {} for i in np.flatnonzero(gsel)]
        g_in &= np.array([a.get(key) == value for a in attrs], bool)
        d_in[:] = False  # a false positive has no attribute: only detections on counted objects are scored
    return match_class(db, im.dt_scores[dsel], gb, im.gt_ignore[gsel], g_in, d_in, iou)


@dataclass(frozen=True)
class SliceTables:
    """Per-class tables of one slice and the images it covers."""

    name: str
    image_mask: F64
    tables: tuple[ClassTable, ...]
    n_gt: tuple[int, ...]


def build_tables(images: Sequence[ScoredImage], num_classes: int, slices: Sequence[Slice], iou: float = 0.5) -> list[SliceTables]:
    """Match every image once per slice and class."""
    out = []
    for sl in slices:
        mask = np.array(
            [1.0 if sl.image_tag is None or im.tags.get(sl.image_tag[0]) == sl.image_tag[1] else 0.0 for im in images]
        )
        tables = []
        n_gt = []
        for c in range(num_classes):
            matches = [_match_image(im, c, sl, iou) for im in images]
            tables.append(ClassTable.build(matches))
            n_gt.append(int(sum(m.n_gt for m, w in zip(matches, mask, strict=True) if w)))
        out.append(SliceTables(sl.name, mask, tuple(tables), tuple(n_gt)))
    return out


def _ap_rows(st: SliceTables, weights: F64) -> list[F64]:
    w = weights * st.image_mask[None, :]
    return [weighted_ap(t, w) for t in st.tables]


def fp_per_negative_frame(images: Sequence[ScoredImage], min_score: float) -> F64:
    """``(n,)`` detections at or above ``min_score`` per image on images without objects (NaN on the others)."""
    return np.array([float((im.dt_scores >= min_score).sum()) if im.is_negative else np.nan for im in images])


def calibration(images: Sequence[ScoredImage], num_classes: int, min_score: float = 0.05, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error of detection scores (see the module docstring) and its reliability table."""
    conf: list[F64] = []
    correct: list[npt.NDArray[np.bool_]] = []
    everything = Slice("all")
    for im in images:
        for c in range(num_classes):
            m = _match_image(im, c, everything, 0.5)
            keep = m.scores >= min_score
            conf.append(m.scores[keep])
            correct.append(m.tp[keep])
    s = np.concatenate(conf) if conf else np.zeros(0)
    ok = np.concatenate(correct) if correct else np.zeros(0, bool)
    edges = np.linspace(min_score, 1.0, bins + 1)
    table = []
    ece = 0.0
    for k in range(bins):
        sel = (s >= edges[k]) & ((s < edges[k + 1]) if k < bins - 1 else (s <= edges[k + 1]))
        n = int(sel.sum())
        if n:
            acc, mean_conf = float(ok[sel].mean()), float(s[sel].mean())
            ece += n / max(s.size, 1) * abs(acc - mean_conf)
            table.append(
                {
                    "lo": round(float(edges[k]), 3),
                    "hi": round(float(edges[k + 1]), 3),
                    "n": n,
                    "confidence": round(mean_conf, 4),
                    "accuracy": round(acc, 4),
                }
            )
    return {"ece": round(ece, 4) if s.size else None, "min_score": min_score, "detections": int(s.size), "bins": table}


def _operating_point(images: Sequence[ScoredImage], c: int, thr: float) -> tuple[float | None, float | None]:
    """Recall and precision of class ``c`` at score threshold ``thr`` (IoU 0.5)."""
    tp = fp = n_gt = 0
    for im in images:
        m = _match_image(im, c, Slice("all"), 0.5)
        keep = m.scores >= thr
        tp += int(m.tp[keep].sum())
        fp += int((~m.tp[keep]).sum())
        n_gt += m.n_gt
    return (tp / n_gt if n_gt else None), (tp / (tp + fp) if tp + fp else None)


def evaluate_images(
    images: Sequence[ScoredImage],
    class_names: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    operating_score: float = 0.3,
    slices: Sequence[Slice] | None = None,
) -> dict[str, Any]:
    """The full report of one model on one set (JSON-ready); see the module docstring."""
    sl = list(slices) if slices is not None else default_slices(images)
    tables = build_tables(images, len(class_names), sl)
    weights = resample_weights(len(images), n_resamples, seed)
    report: dict[str, Any] = {"num_images": len(images), "bootstrap": {"resamples": n_resamples, "seed": seed, "unit": "image"}}
    slices_out: dict[str, Any] = {}
    for st in tables:
        rows = _ap_rows(st, weights)
        per_class = {}
        for name, row, n in zip(class_names, rows, st.n_gt, strict=True):
            per_class[name] = {"ap50": estimate(row).to_dict(), "num_gt": n}
        slices_out[st.name] = {
            "num_images": int(st.image_mask.sum()),
            "num_gt": int(sum(st.n_gt)),
            "map50": estimate(mean_ap(rows)).to_dict(),
            "per_class": per_class,
        }
    report["map50"] = slices_out["all"]["map50"] if "all" in slices_out else None
    report["num_gt"] = slices_out["all"]["num_gt"] if "all" in slices_out else None
    report["per_class"] = slices_out.get("all", {}).get("per_class", {})
    for c, name in enumerate(class_names):
        if name in report["per_class"]:
            r, p = _operating_point(images, c, operating_score)
            report["per_class"][name].update({f"recall@{operating_score:g}": r, f"precision@{operating_score:g}": p})
    report["slices"] = {k: v for k, v in slices_out.items() if k != "all"}
    fp = fp_per_negative_frame(images, operating_score)
    neg = ~np.isnan(fp)
    fp_rows = np.array([(w[neg] @ fp[neg]) / w[neg].sum() if w[neg].sum() else np.nan for w in weights])
    report["negative_frames"] = {
        "num_images": int(neg.sum()),
        "min_score": operating_score,
        "false_positives_per_frame": estimate(fp_rows).to_dict() if neg.any() else None,
    }
    report["calibration"] = calibration(images, len(class_names))
    report["confusion_matrix"] = confusion(images, class_names, operating_score)
    return report


def confusion(images: Sequence[ScoredImage], class_names: Sequence[str], min_score: float) -> dict[str, Any]:
    """Confusion matrix at the operating threshold (rows truth, columns prediction, last = background), IoU 0.5."""
    from sorter.entities import Detections
    from sorter.train.evaluate import confusion_update
    from sorter.train.samples import Sample

    c = len(class_names)
    m = np.zeros((c + 1, c + 1), np.int64)
    for im in images:
        order = np.argsort(-im.dt_scores, kind="mergesort")
        sample = Sample(np.zeros((0, 0, 3), np.uint8), im.gt_boxes, im.gt_classes, im.gt_ignore)
        confusion_update(m, sample, Detections(im.dt_boxes[order], im.dt_scores[order], im.dt_classes[order]), min_score)
    return {
        "labels": [*class_names, "background"],
        "rows": "truth",
        "columns": "prediction",
        "iou": 0.5,
        "min_score": min_score,
        "counts": m.tolist(),
    }


def compare_images(
    a: Sequence[ScoredImage],
    b: Sequence[ScoredImage],
    class_names: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    operating_score: float = 0.3,
) -> dict[str, Any]:
    """Paired comparison of two models' detections on the same images: differences ``b - a`` with intervals.

    Raises:
        ValueError: when the two lists do not cover the same images.
    """
    if len(a) != len(b) or any(x.shape != y.shape or x.gt_boxes.shape != y.gt_boxes.shape for x, y in zip(a, b, strict=True)):
        raise ValueError("the two models were not scored on the same images; run both on one dataset")
    sl = default_slices(a)
    ta = build_tables(a, len(class_names), sl)
    tb = build_tables(b, len(class_names), sl)
    weights = resample_weights(len(a), n_resamples, seed)
    out: dict[str, Any] = {"num_images": len(a), "bootstrap": {"resamples": n_resamples, "seed": seed, "unit": "image"}}
    rows_out: dict[str, Any] = {}
    for sa, sb in zip(ta, tb, strict=True):
        ra, rb = _ap_rows(sa, weights), _ap_rows(sb, weights)
        entry: dict[str, Any] = {"map50": paired_difference(mean_ap(ra), mean_ap(rb)).to_dict(), "per_class": {}}
        for name, x, y, n in zip(class_names, ra, rb, sa.n_gt, strict=True):
            if n:
                entry["per_class"][name] = {**paired_difference(x, y).to_dict(), "num_gt": n}
        rows_out[sa.name] = entry
    out["all"] = rows_out.pop("all")
    out["slices"] = rows_out
    fa, fb = fp_per_negative_frame(a, operating_score), fp_per_negative_frame(b, operating_score)
    neg = ~np.isnan(fa)
    if neg.any():

        def rate(f: F64) -> F64:
            return np.array([(w[neg] @ f[neg]) / w[neg].sum() if w[neg].sum() else np.nan for w in weights])

        out["false_positives_per_negative_frame"] = paired_difference(rate(fa), rate(fb)).to_dict()
    return out


def significant_lines(comparison: dict[str, Any], names: tuple[str, str] = ("A", "B")) -> list[str]:
    """Human-readable lines for every significant difference of a :func:`compare_images` result."""
    lines = []

    def add(label: str, d: dict[str, Any]) -> None:
        if d.get("significant"):
            lo, hi = d["diff"]["ci95"]
            better = names[1] if d["diff"]["value"] > 0 else names[0]
            lines.append(
                f"{label}: {names[0]} {d['a']:.3f} vs {names[1]} {d['b']:.3f}, "
                f"diff {d['diff']['value']:+.3f} [{lo:+.3f}, {hi:+.3f}]: {better} better"
            )

    add("mAP@0.5", comparison["all"]["map50"])
    for cls, d in comparison["all"]["per_class"].items():
        add(f"AP@0.5 {cls}", d)
    for sl, entry in comparison["slices"].items():
        add(f"mAP@0.5 [{sl}]", entry["map50"])
    fp = comparison.get("false_positives_per_negative_frame")
    if fp and fp.get("significant"):
        lo, hi = fp["diff"]["ci95"]
        better = names[0] if fp["diff"]["value"] > 0 else names[1]
        lines.append(
            f"false positives per bare-belt frame: {names[0]} {fp['a']:.2f} vs {names[1]} {fp['b']:.2f}, "
            f"diff {fp['diff']['value']:+.2f} [{lo:+.2f}, {hi:+.2f}]: {better} better"
        )
    return lines


DetectFn = Callable[[npt.NDArray[np.uint8]], tuple[F32, F32, I32]]
