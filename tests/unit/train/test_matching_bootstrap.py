"""Per-image matching and bootstrap AP: equal to pycocotools, and resampling by weights equals explicit resampling."""

from __future__ import annotations

import numpy as np
import pytest

from sorter.train.bootstrap import ClassTable, estimate, paired_difference, resample_weights, weighted_ap
from sorter.train.coco import coco_dict, detections_to_coco
from sorter.train.evaluate import coco_map
from sorter.train.honest import ScoredImage, build_tables, default_slices
from sorter.train.matching import average_precision, match_class
from sorter.train.samples import make_sample

CLASSES = ("a", "b", "c")


def _random_images(seed: int, n: int = 40) -> list[ScoredImage]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        g = int(rng.integers(0, 5))
        xy = rng.uniform(0, 500, (g, 2))
        wh = rng.uniform(8, 150, (g, 2))
        gt = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        gcls = rng.integers(0, 3, g).astype(np.int32)
        crowd = rng.random(g) < 0.1
        # detections: jittered copies of most objects (some with the wrong class) plus clutter
        keep = rng.random(g) < 0.8
        jit = gt[keep] + rng.normal(0, 6, (int(keep.sum()), 4)).astype(np.float32)
        dcls = np.where(rng.random(int(keep.sum())) < 0.15, rng.integers(0, 3, int(keep.sum())), gcls[keep]).astype(np.int32)
        k = int(rng.integers(0, 4))
        cxy = rng.uniform(0, 500, (k, 2))
        clutter = np.concatenate([cxy, cxy + rng.uniform(8, 80, (k, 2))], 1).astype(np.float32)
        boxes = np.concatenate([jit, clutter]).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        classes = np.concatenate([dcls, rng.integers(0, 3, k)]).astype(np.int32)
        scores = rng.uniform(0.01, 1.0, boxes.shape[0]).astype(np.float32)
        out.append(ScoredImage((640, 640), gt, gcls, crowd, boxes, scores, classes))
    return out


def _pycocotools(images: list[ScoredImage]) -> dict:
    pairs, results = [], []
    for i, im in enumerate(images):
        s = make_sample(np.zeros((0, 0, 3), np.uint8), im.gt_boxes, im.gt_classes, im.gt_ignore, i + 1)
        pairs.append(({"id": i + 1, "width": 640, "height": 640, "file_name": str(i)}, s))
        results += detections_to_coco(i + 1, im.dt_boxes, im.dt_scores, im.dt_classes)
    return coco_map(coco_dict(pairs, CLASSES), results, CLASSES)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ap_per_class_and_size_equals_pycocotools(seed: int) -> None:
    images = _random_images(seed)
    ref = _pycocotools(images)
    slices = {s.name: s for s in default_slices(images)}
    tables = {t.name: t for t in build_tables(images, 3, [slices["all"], slices["size=medium"], slices["size=large"]])}
    for c, name in enumerate(CLASSES):
        ours = weighted_ap(tables["all"].tables[c], np.ones((1, len(images))))[0]
        assert ours == pytest.approx(ref["per_class"][name]["map50"], abs=1e-9)
    # per size over all classes: pycocotools averages precision over classes too
    for size in ("medium", "large"):
        aps = [weighted_ap(t, np.ones((1, len(images))))[0] for t in tables[f"size={size}"].tables]
        aps = [a for a in aps if not np.isnan(a)]
        assert np.mean(aps) == pytest.approx(ref["per_size"][size]["map50"], abs=1e-9)


def test_weighted_ap_equals_an_explicitly_resampled_set() -> None:
    images = _random_images(5, 30)
    rng = np.random.default_rng(9)
    draw = rng.integers(0, len(images), len(images))
    w = np.bincount(draw, minlength=len(images)).astype(float)[None, :]
    for c in range(3):
        per_image = [
            match_class(
                im.dt_boxes[im.dt_classes == c],
                im.dt_scores[im.dt_classes == c],
                im.gt_boxes[im.gt_classes == c],
                im.gt_ignore[im.gt_classes == c],
                np.ones(int((im.gt_classes == c).sum()), bool),
                np.ones(int((im.dt_classes == c).sum()), bool),
            )
            for im in images
        ]
        explicit = average_precision([per_image[i] for i in draw])
        assert weighted_ap(ClassTable.build(per_image), w)[0] == pytest.approx(explicit, abs=1e-12)


def test_bootstrap_interval_brackets_the_value_and_shrinks_with_more_images() -> None:
    def width(n: int) -> float:
        images = _random_images(3, n)
        t = build_tables(images, 3, default_slices(images)[:1])[0]
        row = weighted_ap(t.tables[0], resample_weights(len(images), 300, 0))
        e = estimate(row)
        assert e.lo is not None and e.hi is not None and e.lo <= e.value <= e.hi
        return e.hi - e.lo

    assert width(200) < width(20)


def test_paired_difference_flags_a_clearly_better_model_only() -> None:
    images = _random_images(4, 60)
    better = [
        ScoredImage(
            im.shape,
            im.gt_boxes,
            im.gt_classes,
            im.gt_ignore,
            im.gt_boxes.copy(),
            np.full(im.gt_boxes.shape[0], 0.9, np.float32),
            im.gt_classes.copy(),
        )
        for im in images
    ]
    w = resample_weights(len(images), 300, 1)
    ta = build_tables(images, 3, default_slices(images)[:1])[0].tables[0]
    tb = build_tables(better, 3, default_slices(better)[:1])[0].tables[0]
    d = paired_difference(weighted_ap(ta, w), weighted_ap(tb, w))
    assert d.significant and d.diff.value > 0
    same = paired_difference(weighted_ap(ta, w), weighted_ap(ta, w))
    assert not same.significant and same.diff.value == 0
