"""Training targets, augmentation and the toy dataset (pure numpy + OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

from sorter.train.augment import NO_AUGMENT, AugmentConfig, augment
from sorter.train.targets import build_targets
from sorter.train.toy import ToyShapes


def test_targets_peak_at_the_centre_cell_with_box_regression() -> None:
    boxes = np.array([[40, 20, 100, 60]], np.float32)  # centre (70, 40) -> cell (17, 10) at stride 4
    t = build_targets(boxes, np.array([2], np.int32), np.array([False]), 6, 80, 48, 4)
    assert t.num_objects == 1
    assert t.heat[2, 10, 17] == 1.0
    assert t.heat[[0, 1, 3, 4, 5]].max() == 0.0
    assert np.count_nonzero(t.heat[2] == 1.0) == 1
    assert t.box_weight.sum() == np.float32(1.0) or abs(float(t.box_weight.sum()) - 1.0) < 1e-5
    assert t.box_weight[10, 17] > 0
    np.testing.assert_allclose(t.box[:, 10, 17], [40, 20, 100, 60])
    ys, xs = np.nonzero(t.box_weight)
    centres_x, centres_y = (xs + 0.5) * 4, (ys + 0.5) * 4
    assert ((centres_x > 40) & (centres_x < 100) & (centres_y > 20) & (centres_y < 60)).all()


def test_ignored_objects_mask_the_heatmap_and_do_not_regress() -> None:
    boxes = np.array([[0, 0, 40, 40], [100, 100, 140, 140]], np.float32)
    t = build_targets(boxes, np.array([0, 1], np.int32), np.array([True, False]), 6, 80, 48, 4)
    assert t.num_objects == 1
    assert t.heat_mask[:10, :10].max() == 0.0
    assert t.heat[:, :10, :10].max() == 0.0
    assert t.heat_mask[30, 30] == 1.0
    assert t.box_weight[:10, :10].max() == 0.0


def test_small_object_wins_ownership_where_it_overlaps_a_large_one() -> None:
    boxes = np.array([[0, 0, 200, 160], [90, 70, 110, 90]], np.float32)
    t = build_targets(boxes, np.array([3, 2], np.int32), np.array([False, False]), 6, 80, 48, 4)
    np.testing.assert_allclose(t.box[:, 20, 25], [90, 70, 110, 90])  # the small box's centre cell
    assert t.heat[2, 20, 25] == 1.0 and t.heat[3, 20, 25] == 1.0  # both peaks survive (different classes)


def test_flips_move_boxes_with_the_pixels() -> None:
    img = np.full((192, 320, 3), 50, np.uint8)
    img[30:60, 200:260] = 255
    boxes = np.array([[200, 30, 260, 60]], np.float32)
    cfg = AugmentConfig(
        flip_lr=1.0, flip_ud=1.0, zoom=0.0, shift=0.0, gain=0, brightness=0, contrast=0, gamma=0, noise_sigma_max=0, blur_p=0
    )
    out, b, ig, keep = augment(img, boxes, np.array([False]), cfg, np.random.default_rng(0), 114)
    ys, xs = np.nonzero(out[:, :, 0] > 200)
    np.testing.assert_allclose(b[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1.0)
    assert keep.all() and not ig.any()


def test_zoom_and_shift_keep_boxes_on_the_drawn_object() -> None:
    img = np.full((192, 320, 3), 50, np.uint8)
    cv2.rectangle(img, (100, 60), (179, 119), (255, 255, 255), -1)
    boxes = np.array([[100, 60, 180, 120]], np.float32)
    for seed in range(5):
        cfg = AugmentConfig(
            flip_lr=0.5, flip_ud=0.5, zoom=0.2, shift=0.1, gain=0, brightness=0, contrast=0, gamma=0, noise_sigma_max=0, blur_p=0
        )
        out, b, _ig, keep = augment(img, boxes, np.array([False]), cfg, np.random.default_rng(seed), 114)
        ys, xs = np.nonzero(out[:, :, 0] > 150)
        assert keep.all()
        np.testing.assert_allclose(b[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1.5)


def test_objects_pushed_out_of_view_become_ignored_or_dropped() -> None:
    img = np.zeros((192, 320, 3), np.uint8)
    img[0:30, 0:30] = 255  # corner object, easily pushed out
    img[80:120, 140:180] = 255  # centre object, always fully visible: measures the zoom
    boxes = np.array([[0, 0, 30, 30], [140, 80, 180, 120]], np.float32)
    cfg = AugmentConfig(
        flip_lr=0, flip_ud=0, zoom=0.2, shift=0.1, gain=0, brightness=0, contrast=0, gamma=0, noise_sigma_max=0, blur_p=0
    )
    seen_ignored = seen_kept = 0
    for seed in range(40):
        _out, b, ig, keep = augment(img, boxes, np.array([False, False]), cfg, np.random.default_rng(seed), 114)
        assert keep[1] and not ig[-1]
        zoom = (b[-1, 2] - b[-1, 0]) / 40.0
        assert ((b[:, 0::2] >= 0) & (b[:, 0::2] <= 320) & (b[:, 1::2] >= 0) & (b[:, 1::2] <= 192)).all()
        if keep[0]:
            frac = (b[0, 2] - b[0, 0]) * (b[0, 3] - b[0, 1]) / (900.0 * zoom * zoom)
            assert bool(ig[0]) == bool(frac < 0.5), (seed, frac)
            seen_ignored += int(ig[0])
            seen_kept += int(not ig[0])
    assert seen_ignored > 0 and seen_kept > 0


def test_no_augment_is_identity() -> None:
    img = np.random.default_rng(0).integers(0, 255, (192, 320, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 50, 50]], np.float32)
    out, b, ig, keep = augment(img, boxes, np.array([True]), NO_AUGMENT, np.random.default_rng(0), 114)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_array_equal(b, boxes)
    assert ig.all() and keep.all()


def test_toy_dataset_is_deterministic_and_boxes_cover_drawn_shapes() -> None:
    a, b = ToyShapes(4, seed=5), ToyShapes(4, seed=5)
    for i in range(4):
        sa, sb = a[i], b[i]
        np.testing.assert_array_equal(sa.image, sb.image)
        np.testing.assert_array_equal(sa.boxes_px, sb.boxes_px)
        assert sa.boxes_px.shape[0] == sa.class_ids.shape[0] >= 1
        assert (sa.boxes_px[:, 2] <= 320).all() and (sa.boxes_px[:, 3] <= 180).all()
