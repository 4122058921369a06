"""Box losses of the detector head: the edge L1 term feels an edge a pixel off where GIoU hardly does."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sorter.detect.spec import ModelSpec  # noqa: E402
from sorter.train.loss import cell_centres, edge_l1_loss, giou_loss  # noqa: E402

SPEC = ModelSpec(input_w_px=64, input_h_px=32, width=4, top_k=10)


def _one_cell_target(box: tuple[float, float, float, float], cell: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """Target box and weight at one cell, and the distances that predict ``box`` exactly from that cell."""
    h, w = SPEC.heatmap_h, SPEC.heatmap_w
    cx, cy = cell_centres(SPEC, torch.device("cpu"))
    target = torch.zeros(1, 4, h, w)
    weight = torch.zeros(1, 1, h, w)
    r, c = cell
    target[0, :, r, c] = torch.tensor(box)
    weight[0, 0, r, c] = 1.0
    x0, y0 = float(cx[0, 0, r, c]), float(cy[0, 0, r, c])
    dist = torch.zeros(1, 4, h, w)
    dist[0, :, r, c] = torch.tensor([x0 - box[0], y0 - box[1], box[2] - x0, box[3] - y0])
    return dist, target, weight, cx, cy


def test_an_exact_box_costs_nothing_and_an_edge_off_costs_its_pixels_in_cells() -> None:
    dist, target, weight, cx, cy = _one_cell_target((2.0, 6.0, 60.0, 30.0), (4, 8))
    stride = float(SPEC.out_stride)
    assert float(edge_l1_loss(dist, target, weight, cx, cy, stride)) == pytest.approx(0.0, abs=1e-6)
    off = dist.clone()
    off[0, 3, 4, 8] += 2.0  # the far end along the image's y two pixels too far
    off[0, 1, 4, 8] -= 2.0  # and the near end two pixels short: the box shifted by 2 px
    # mean over the four edges of |error| in cells: (2 + 2) / 4 / stride
    assert float(edge_l1_loss(off, target, weight, cx, cy, stride)) == pytest.approx(4.0 / 4.0 / stride, rel=1e-5)


def _cost_of_a_shift_along_x(box: tuple[float, float, float, float], shift_px: float) -> tuple[float, float]:
    dist, target, weight, cx, cy = _one_cell_target(box, (3, 8))
    off = dist.clone()
    off[0, 0, 3, 8] -= shift_px
    off[0, 2, 3, 8] += shift_px
    giou_cost = float(giou_loss(off, target, weight, cx, cy)) - float(giou_loss(dist, target, weight, cx, cy))
    return giou_cost, float(edge_l1_loss(off, target, weight, cx, cy, float(SPEC.out_stride)))


def test_the_edge_term_charges_pixels_whatever_the_size_where_giou_charges_a_share() -> None:
    giou_small, edge_small = _cost_of_a_shift_along_x((26.0, 10.0, 38.0, 22.0), 2.0)  # 12 px wide
    giou_large, edge_large = _cost_of_a_shift_along_x((2.0, 10.0, 62.0, 22.0), 2.0)  # 60 px wide
    assert edge_small == pytest.approx(edge_large, rel=1e-5)
    assert edge_large == pytest.approx(4.0 / 4.0 / SPEC.out_stride, rel=1e-5)
    assert giou_large < 0.3 * giou_small  # GIoU: the same two pixels cost a large box a fifth as much


def test_cells_without_weight_do_not_count() -> None:
    dist, target, weight, cx, cy = _one_cell_target((2.0, 6.0, 60.0, 30.0), (4, 8))
    dist[0, :, 1, 1] = 50.0  # a wild prediction at a cell no object owns
    assert float(edge_l1_loss(dist, target, weight, cx, cy, float(SPEC.out_stride))) == pytest.approx(0.0, abs=1e-6)
    empty = torch.zeros_like(weight)
    assert float(edge_l1_loss(dist, target, empty, cx, cy, float(SPEC.out_stride))) == 0.0
