"""Bootstrap confidence intervals of AP by resampling images. Pure numpy.

A resample of ``n`` images drawn with replacement is a vector of
multiplicities ``w`` (how often each image was drawn). Because every image's
detections were matched once (:mod:`sorter.train.matching`), the AP of the
resample is the AP of the concatenated per-image records with each
detection and object counted ``w[image]`` times; this module computes that
directly on score-sorted arrays, for all resamples at once. A test checks it
against the AP of an explicitly concatenated resample.

The same multiplicities applied to two models on the same images give a
*paired* bootstrap of their difference: a difference whose 95 % interval
excludes zero is called significant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sorter.train.matching import ImageMatch

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

REC_THRS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class ClassTable:
    """One class's matched detections over a set of images, sorted by score (descending).

    Attributes:
        scores: ``(D,)`` sorted scores.
        tp: ``(D,)`` true-positive flags.
        image: ``(D,)`` image index of each detection.
        n_gt: ``(n_images,)`` counted objects per image.
    """

    scores: F64
    tp: B
    image: I64
    n_gt: I64

    @staticmethod
    def build(matches: Sequence[ImageMatch]) -> ClassTable:
        """Table from per-image matches (one per image, in image order)."""
        if matches:
            scores = np.concatenate([m.scores for m in matches])
            tp = np.concatenate([m.tp for m in matches]).astype(bool)
            image = np.concatenate([np.full(m.scores.shape[0], i, np.int64) for i, m in enumerate(matches)])
        else:
            scores, tp, image = np.zeros(0), np.zeros(0, bool), np.zeros(0, np.int64)
        order = np.argsort(-scores, kind="mergesort")
        return ClassTable(scores[order], tp[order], image[order], np.array([m.n_gt for m in matches], np.int64))


def weighted_ap(table: ClassTable, weights: F64, chunk: int = 64) -> F64:
    """AP of ``table`` under each row of image multiplicities ``weights`` ``(R, n_images)``; NaN where no object counts.

    Rows are processed ``chunk`` at a time so memory stays at a few ``chunk x detections`` arrays.
    """
    w = np.atleast_2d(weights)
    if w.shape[0] > chunk:
        return np.concatenate([_weighted_ap(table, w[k : k + chunk]) for k in range(0, w.shape[0], chunk)])
    return _weighted_ap(table, w)


def _weighted_ap(table: ClassTable, w: F64) -> F64:
    n_gt = w @ table.n_gt.astype(np.float64)
    out = np.full(w.shape[0], np.nan)
    if table.scores.size == 0:
        out[n_gt > 0] = 0.0
        return out
    wd = w[:, table.image]
    tps = np.cumsum(wd * table.tp, axis=1)
    fps = np.cumsum(wd * ~table.tp, axis=1)
    pr = tps / np.maximum(tps + fps, np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    for r in np.flatnonzero(n_gt > 0):
        rc = tps[r] / n_gt[r]
        idx = np.searchsorted(rc, REC_THRS, side="left")
        q = np.where(idx < rc.size, pr[r, np.minimum(idx, rc.size - 1)], 0.0)
        out[r] = float(q.mean())
    return out


def resample_weights(n_images: int, n_resamples: int, seed: int) -> F64:
    """``(1 + R, n)`` multiplicities: row 0 is the full set (all ones), rows 1.. are bootstrap resamples."""
    rng = np.random.default_rng(seed)
    full = np.ones((1, n_images))
    if n_images == 0 or n_resamples <= 0:
        return full
    draws = rng.integers(0, n_images, size=(n_resamples, n_images))
    boot = np.stack([np.bincount(d, minlength=n_images) for d in draws]).astype(np.float64)
    return np.concatenate([full, boot])


def mean_ap(per_class: Sequence[F64]) -> F64:
    """Mean over classes of per-class AP rows, ignoring classes without objects (NaN) per resample."""
    if not per_class:
        return np.zeros(0)
    stack = np.stack(per_class)
    valid = ~np.isnan(stack)
    total = np.where(valid, stack, 0.0).sum(axis=0)
    count = valid.sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclass(frozen=True)
class Estimate:
    """A metric on the full set and its bootstrap 95 % interval (``None`` where undefined)."""

    value: float | None
    lo: float | None
    hi: float | None

    def to_dict(self) -> dict[str, float | list[float] | None]:
        """JSON form: ``{"value": v, "ci95": [lo, hi]}``."""
        return {
            "value": None if self.value is None else round(self.value, 4),
            "ci95": None if self.lo is None or self.hi is None else [round(self.lo, 4), round(self.hi, 4)],
        }


def estimate(row: F64) -> Estimate:
    """Value (row 0) and percentile interval (rows 1..) of one metric across resamples."""
    value = None if row.size == 0 or np.isnan(row[0]) else float(row[0])
    boot = row[1:][~np.isnan(row[1:])]
    if value is None or boot.size < 2:
        return Estimate(value, None, None)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return Estimate(value, float(lo), float(hi))


@dataclass(frozen=True)
class Difference:
    """A paired difference ``b - a`` with its bootstrap interval; significant when the interval excludes 0."""

    a: float | None
    b: float | None
    diff: Estimate

    @property
    def significant(self) -> bool:
        """True when the 95 % interval of the difference excludes zero."""
        d = self.diff
        return d.lo is not None and d.hi is not None and (d.lo > 0.0 or d.hi < 0.0)

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {
            "a": None if self.a is None else round(self.a, 4),
            "b": None if self.b is None else round(self.b, 4),
            "diff": self.diff.to_dict(),
            "significant": self.significant,
        }


def paired_difference(a_row: F64, b_row: F64) -> Difference:
    """Difference of two metrics computed under the same resamples (rows)."""
    ea, eb = estimate(a_row), estimate(b_row)
    return Difference(ea.value, eb.value, estimate(b_row - a_row))
