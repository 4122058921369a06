"""Losses of the CenterNet head (torch): penalty-reduced focal loss on the heatmap, GIoU and edge L1 on boxes.

GIoU charges an edge error as a share of the box (a box 80 px long shifted 2 px along it: 1 - GIoU = 0.05), so
it lets large objects' ends drift by pixels; the line aims its air by the box's ends along the belt, where every
pixel is about 3 mm at the jet. The edge L1 term charges every edge's error in absolute terms (heatmap cells),
whatever the box's size; at a weight of 2 (``sorter train --edge-loss-weight 2``) it pulls a typical 75-px object's
ends about twice as hard as the GIoU term. Its weight is a training option, 0 by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)

from sorter.detect.spec import ModelSpec

BOX_LOSS_WEIGHT = 5.0


def focal_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CenterNet focal loss (alpha 2, beta 4), normalised by the number of peaks.

    Args:
        logits: ``(B, C, h, w)``.
        target: ``(B, C, h, w)`` Gaussian heatmaps, exactly 1 at peaks.
        mask: ``(B, 1, h, w)`` 0 where ignored.
    """
    p = torch.sigmoid(logits)
    pos = target.ge(0.999).float()
    pos_loss = F.logsigmoid(logits) * (1.0 - p).pow(2) * pos
    neg_loss = F.logsigmoid(-logits) * p.pow(2) * (1.0 - target).pow(4) * (1.0 - pos) * mask
    n_pos = pos.sum().clamp(min=1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / n_pos


def cell_centres(spec: ModelSpec, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, 1, h, w)`` x and y of heatmap cell centres in input pixels."""
    s = float(spec.out_stride)
    ys = (torch.arange(spec.heatmap_h, device=device, dtype=torch.float32) + 0.5) * s
    xs = (torch.arange(spec.heatmap_w, device=device, dtype=torch.float32) + 0.5) * s
    return xs.view(1, 1, 1, -1).expand(1, 1, spec.heatmap_h, -1), ys.view(1, 1, -1, 1).expand(1, 1, -1, spec.heatmap_w)


Edges = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def weighted_edges(
    dist: torch.Tensor, box: torch.Tensor, weight: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor
) -> tuple[Edges, Edges, torch.Tensor] | None:
    """Predicted and target ``(x1, y1, x2, y2)`` and the weight at the weighted cells (flat); None when there is none.

    Args:
        dist: ``(B, 4, h, w)`` predicted distances (input pixels).
        box: ``(B, 4, h, w)`` target boxes.
        weight: ``(B, 1, h, w)``.
        cx: cell centres x, broadcastable.
        cy: cell centres y.
    """
    sel = weight[:, 0] > 0
    if not bool(sel.any()):
        return None
    px1, py1 = (cx - dist[:, 0:1])[:, 0][sel], (cy - dist[:, 1:2])[:, 0][sel]
    px2, py2 = (cx + dist[:, 2:3])[:, 0][sel], (cy + dist[:, 3:4])[:, 0][sel]
    tx1, ty1, tx2, ty2 = (box[:, k][sel] for k in range(4))
    return (px1, py1, px2, py2), (tx1, ty1, tx2, ty2), weight[:, 0][sel]


def giou_loss(dist: torch.Tensor, box: torch.Tensor, weight: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    """Weighted ``1 - GIoU`` of predicted and target boxes at weighted cells (arguments: :func:`weighted_edges`)."""
    pairs = weighted_edges(dist, box, weight, cx, cy)
    if pairs is None:
        return dist.sum() * 0.0
    (px1, py1, px2, py2), (tx1, ty1, tx2, ty2), w = pairs
    area_p = (px2 - px1).clamp(min=0) * (py2 - py1).clamp(min=0)
    area_t = (tx2 - tx1).clamp(min=0) * (ty2 - ty1).clamp(min=0)
    iw = (torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
    ih = (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0)
    inter = iw * ih
    union = area_p + area_t - inter + 1e-6
    iou = inter / union
    ew = torch.maximum(px2, tx2) - torch.minimum(px1, tx1)
    eh = torch.maximum(py2, ty2) - torch.minimum(py1, ty1)
    enclose = ew * eh + 1e-6
    giou = iou - (enclose - union) / enclose
    return ((1.0 - giou) * w).sum() / w.sum().clamp(min=1.0)


def edge_l1_loss(
    dist: torch.Tensor, box: torch.Tensor, weight: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, stride: float
) -> torch.Tensor:
    """Weighted mean absolute error of the four box edges, in heatmap cells, at weighted cells.

    Args: as :func:`weighted_edges`, and ``stride``: input pixels per heatmap cell.
    """
    pairs = weighted_edges(dist, box, weight, cx, cy)
    if pairs is None:
        return dist.sum() * 0.0
    pred, target, w = pairs
    err = sum((p - t).abs() for p, t in zip(pred, target, strict=True)) / (4.0 * stride)
    return (err * w).sum() / w.sum().clamp(min=1.0)


def detection_loss(
    heat_logits: torch.Tensor,
    dist: torch.Tensor,
    batch: dict[str, torch.Tensor],
    spec: ModelSpec,
    edge_loss_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts for one batch (see :func:`sorter.train.batches.make_batch`).

    ``edge_loss_weight``: weight of :func:`edge_l1_loss` beside the GIoU term (0: not added; its part is still
    reported).
    """
    cx, cy = cell_centres(spec, heat_logits.device)
    lh = focal_loss(heat_logits, batch["heat"], batch["heat_mask"])
    lb = giou_loss(dist, batch["box"], batch["box_weight"], cx, cy)
    le = edge_l1_loss(dist, batch["box"], batch["box_weight"], cx, cy, float(spec.out_stride))
    total = lh + BOX_LOSS_WEIGHT * lb
    if edge_loss_weight:
        total = total + edge_loss_weight * le
    return total, {"heat": float(lh.detach()), "box": float(lb.detach()), "edge": float(le.detach())}
