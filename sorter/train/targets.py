"""Training targets of the CenterNet head. Pure numpy.

For each object (boxes in network-input pixels) the class heatmap gets an
elliptical Gaussian at the centre cell, peak exactly 1, with sigmas scaled to
the box (TTFNet style: ``sigma = 0.54 * side / 6`` in cells, at least 0.8).
Box regression uses every cell where the object's Gaussian exceeds
``REG_MIN_GAUSS`` and which it owns (the object with the highest Gaussian
value there), weighted by that value and normalised so each object counts once.
Ignored objects (mostly hidden, crowd) mask the heatmap loss over their box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ALPHA = 0.54
MIN_SIGMA_CELLS = 0.8
REG_MIN_GAUSS = 0.3

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Targets:
    """Targets of one image.

    Attributes:
        heat: ``(C, h, w)`` Gaussian heatmaps (1 at object centres).
        heat_mask: ``(h, w)`` 1 where the heatmap loss counts, 0 over ignored objects.
        box: ``(4, h, w)`` target box ``(x1, y1, x2, y2)`` in input pixels at owned cells.
        box_weight: ``(h, w)`` regression weight (sums to the number of objects).
        num_objects: objects that produced a peak.
    """

    heat: F32
    heat_mask: F32
    box: F32
    box_weight: F32
    num_objects: int


def build_targets(
    boxes_px: F32,
    class_ids: npt.NDArray[np.int32],
    ignore: npt.NDArray[np.bool_],
    num_classes: int,
    heat_w: int,
    heat_h: int,
    stride: int,
) -> Targets:
    """Targets for one image.

    Args:
        boxes_px: ``(N, 4)`` boxes in network-input pixels.
        class_ids: ``(N,)`` class indices.
        ignore: ``(N,)`` True for ignored objects.
        num_classes: heatmap channels.
        heat_w: heatmap width (cells).
        heat_h: heatmap height (cells).
        stride: input pixels per cell.
    """
    heat = np.zeros((num_classes, heat_h, heat_w), np.float32)
    mask = np.ones((heat_h, heat_w), np.float32)
    box = np.zeros((4, heat_h, heat_w), np.float32)
    weight = np.zeros((heat_h, heat_w), np.float32)
    owner_val = np.zeros((heat_h, heat_w), np.float32)
    ys = (np.arange(heat_h, dtype=np.float32) + 0.5) * stride
    xs = (np.arange(heat_w, dtype=np.float32) + 0.5) * stride
    b = np.asarray(boxes_px, np.float32).reshape(-1, 4)
    valid = (b[:, 2] - b[:, 0] >= 1.0) & (b[:, 3] - b[:, 1] >= 1.0)
    for i in np.flatnonzero(valid & ignore):
        x1, y1, x2, y2 = b[i] / stride
        mask[max(0, int(y1)) : max(0, int(np.ceil(y2))), max(0, int(x1)) : max(0, int(np.ceil(x2)))] = 0.0
    # larger objects first so smaller ones win ownership ties where they overlap
    pos = np.flatnonzero(valid & ~ignore)
    areas = (b[pos, 2] - b[pos, 0]) * (b[pos, 3] - b[pos, 1])
    n_obj = 0
    for i in pos[np.argsort(-areas, kind="stable")]:
        x1, y1, x2, y2 = (float(v) for v in b[i])
        cx_px, cy_px = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        ci = min(heat_w - 1, max(0, int(cx_px // stride)))
        cj = min(heat_h - 1, max(0, int(cy_px // stride)))
        sx = max(MIN_SIGMA_CELLS, ALPHA * (x2 - x1) / stride / 6.0)
        sy = max(MIN_SIGMA_CELLS, ALPHA * (y2 - y1) / stride / 6.0)
        rx, ry = int(np.ceil(3 * sx)), int(np.ceil(3 * sy))
        i0, i1 = max(0, ci - rx), min(heat_w, ci + rx + 1)
        j0, j1 = max(0, cj - ry), min(heat_h, cj + ry + 1)
        gx = np.exp(-((np.arange(i0, i1) - ci) ** 2) / (2 * sx * sx)).astype(np.float32)
        gy = np.exp(-((np.arange(j0, j1) - cj) ** 2) / (2 * sy * sy)).astype(np.float32)
        g = gy[:, None] * gx[None, :]
        c = int(class_ids[i])
        np.maximum(heat[c, j0:j1, i0:i1], g, out=heat[c, j0:j1, i0:i1])
        mask[j0:j1, i0:i1] = np.maximum(mask[j0:j1, i0:i1], (g > 0.05).astype(np.float32))
        # regression cells: inside the box, Gaussian above threshold, owned by this object
        inside = (xs[None, i0:i1] > x1) & (xs[None, i0:i1] < x2) & (ys[j0:j1, None] > y1) & (ys[j0:j1, None] < y2)
        own = (g >= REG_MIN_GAUSS) & inside & (g >= owner_val[j0:j1, i0:i1])
        own[cj - j0, ci - i0] = True  # the peak cell always regresses
        if not own.any():
            continue
        w = np.where(own, g, 0.0).astype(np.float32)
        w /= w.sum()
        sub_w = weight[j0:j1, i0:i1]
        sub_w[own] = w[own]
        owner_val[j0:j1, i0:i1][own] = g[own]
        for k, v in enumerate((x1, y1, x2, y2)):
            box[k, j0:j1, i0:i1][own] = v
        n_obj += 1
    return Targets(heat, mask, box, weight, n_obj)
