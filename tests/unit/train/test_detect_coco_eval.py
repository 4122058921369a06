"""COCO reading/writing and mAP / confusion-matrix evaluation with pycocotools."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sorter.entities import Detections
from sorter.errors import ConfigError
from sorter.train.coco import CocoDataset, write_coco
from sorter.train.evaluate import confusion_update, evaluate
from sorter.train.samples import Sample, make_sample
from sorter.train.toy import ToyShapes

CLASSES = ("pet_bottle", "hdpe_container", "alu_can")


class _List:
    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples
        self.class_names = CLASSES

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]


def _scene() -> list[Sample]:
    img = np.zeros((120, 200, 3), np.uint8)
    return [
        make_sample(img, [[10, 10, 60, 50], [100, 20, 180, 100]], [0, 1], [False, False], 1),
        make_sample(img, [[20, 30, 90, 110], [150, 0, 199, 10]], [2, 0], [False, True], 2),
    ]


def _oracle(samples: list[Sample], shift_px: float = 0.0, wrong_class: bool = False) -> Callable[[np.ndarray], Detections]:
    """Ground truth as detections, in evaluation order (the evaluator visits samples in order)."""
    lookup = dict(enumerate(samples))
    state = {"i": 0}

    def detect(image: np.ndarray) -> Detections:
        s = lookup[state["i"]]
        state["i"] += 1
        keep = ~s.ignore
        b = s.boxes_px[keep] + np.float32(shift_px)
        c = s.class_ids[keep]
        if wrong_class:
            c = (c + 1) % len(CLASSES)
        return Detections(b.astype(np.float32), np.full(len(b), 0.9, np.float32), c.astype(np.int32))

    return detect


def test_perfect_detections_score_one() -> None:
    samples = _scene()
    summary = evaluate(_oracle(samples), _List(samples), CLASSES)
    assert summary["map50"] == pytest.approx(1.0)
    assert summary["map"] == pytest.approx(1.0)
    assert summary["num_gt"] == 3 and summary["num_ignored"] == 1
    for name in CLASSES:
        assert summary["per_class"][name]["map50"] == pytest.approx(1.0)
    cm = np.array(summary["confusion_matrix"]["counts"])
    np.testing.assert_array_equal(np.diag(cm)[:3], [1, 1, 1])
    assert cm.sum() == 3


def test_shifted_boxes_keep_map50_but_lose_strict_map() -> None:
    samples = _scene()
    summary = evaluate(_oracle(samples, shift_px=6.0), _List(samples), CLASSES)
    assert summary["map50"] == pytest.approx(1.0)
    assert 0.2 < summary["map"] < 0.95


def test_wrong_classes_score_zero_and_show_in_the_confusion_matrix() -> None:
    samples = _scene()
    summary = evaluate(_oracle(samples, wrong_class=True), _List(samples), CLASSES)
    assert summary["map50"] == pytest.approx(0.0)
    cm = np.array(summary["confusion_matrix"]["counts"])
    assert cm[0, 1] == 1 and cm[1, 2] == 1 and cm[2, 0] == 1
    assert np.trace(cm) == 0


def test_detection_on_an_ignored_object_is_not_a_false_positive() -> None:
    s = _scene()[1]
    m = np.zeros((4, 4), np.int64)
    det = Detections(np.array([[150, 0, 199, 10]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))
    confusion_update(m, s, det, 0.3)
    assert m[3].sum() == 0  # no background-row (false positive) entry
    assert m[2, 3] == 1  # the real can was missed


def test_false_positive_lowers_precision() -> None:
    samples = _scene()[:1]
    inner = _oracle(samples)

    def detect(image: np.ndarray) -> Detections:
        d = inner(image)
        fp = np.array([[150, 60, 190, 110]], np.float32)
        return Detections(np.vstack([d.boxes_px, fp]), np.append(d.scores, np.float32(0.95)), np.append(d.class_ids, np.int32(0)))

    summary = evaluate(detect, _List(samples), CLASSES)
    assert summary["per_class"]["pet_bottle"]["map50"] < 0.75
    assert summary["per_class"]["hdpe_container"]["map50"] == pytest.approx(1.0)
    assert np.array(summary["confusion_matrix"]["counts"])[3, 0] == 1


def test_coco_round_trip_with_real_images(tmp_path: Path) -> None:
    toy = ToyShapes(3, seed=9, class_names=CLASSES)
    samples = [toy[i] for i in range(3)]
    samples[0] = make_sample(
        samples[0].image, samples[0].boxes_px, samples[0].class_ids, np.ones(len(samples[0].class_ids), bool), 1
    )
    ann = write_coco(samples, tmp_path / "ds", CLASSES)
    ds = CocoDataset(ann, None, CLASSES)
    assert len(ds) == 3
    for i in range(3):
        got = ds[i]
        np.testing.assert_array_equal(got.image, samples[i].image)  # PNG is lossless
        np.testing.assert_allclose(got.boxes_px, samples[i].boxes_px, atol=0.01)
        np.testing.assert_array_equal(got.class_ids, samples[i].class_ids)
        np.testing.assert_array_equal(got.ignore, samples[i].ignore)


def test_coco_maps_categories_by_name_and_skips_unknown(tmp_path: Path) -> None:
    import cv2

    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.zeros((50, 60, 3), np.uint8))
    coco = {
        "images": [{"id": 7, "file_name": "a.png", "width": 60, "height": 50}],
        "categories": [{"id": 3, "name": "alu_can"}, {"id": 9, "name": "banana"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 10, 20], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 9, "bbox": [5, 5, 5, 5], "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 3, "bbox": [30, 2, 10, 20], "ignore": 1},
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    ds = CocoDataset(tmp_path / "ann.json", tmp_path / "img", CLASSES)
    s = ds[0]
    np.testing.assert_array_equal(s.class_ids, [2, 2])
    np.testing.assert_allclose(s.boxes_px[0], [1, 2, 11, 22])
    np.testing.assert_array_equal(s.ignore, [False, True])


def test_coco_errors_are_actionable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        CocoDataset(tmp_path / "nope.json", None, CLASSES)
    (tmp_path / "x.json").write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "rock"}]}))
    with pytest.raises(ConfigError, match="rename the categories"):
        CocoDataset(tmp_path / "x.json", None, CLASSES)
