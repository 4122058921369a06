"""Honest evaluation: slices, bare-belt false positives, calibration error, paired comparison lines."""

from __future__ import annotations

import numpy as np

from sorter.train.honest import ScoredImage, calibration, compare_images, evaluate_images, light_tag, significant_lines

CLASSES = ("a", "b")


def _img(
    gt: list[tuple[float, float, float, float]],
    gcls: list[int],
    dt: list[tuple[float, float, float, float]],
    scores: list[float],
    dcls: list[int],
    tags: dict[str, str] | None = None,
    attrs: tuple = (),
) -> ScoredImage:
    return ScoredImage(
        (100, 300),
        np.array(gt, np.float32).reshape(-1, 4),
        np.array(gcls, np.int32),
        np.zeros(len(gt), bool),
        np.array(dt, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(dcls, np.int32),
        tags or {},
        attrs,
    )


def test_report_has_per_class_slices_negatives_and_calibration() -> None:
    left, right = (10.0, 10.0, 60.0, 60.0), (240.0, 10.0, 290.0, 60.0)
    images = []
    for k in range(20):
        images.append(_img([left], [0], [left], [0.9], [0], {"light": "dark"}, ({"state": "flat"},)))  # found
        images.append(_img([right], [1], [], [], [], {"light": "bright"}, ({"state": "crumpled"},)))  # missed
        images.append(_img([], [], [(100.0, 0.0, 150.0, 50.0)] * (k % 2), [0.5] * (k % 2), [0] * (k % 2)))  # bare belt
    r = evaluate_images(images, CLASSES, n_resamples=200)
    assert r["per_class"]["a"]["ap50"]["value"] == 1.0 and r["per_class"]["b"]["ap50"]["value"] == 0.0
    assert r["map50"]["value"] == 0.5 and r["per_class"]["a"]["recall@0.3"] == 1.0
    s = r["slices"]
    assert s["region=left"]["map50"]["value"] == 1.0 and s["region=right"]["map50"]["value"] == 0.0
    assert s["light=dark"]["num_images"] == 20 and s["light=dark"]["per_class"]["a"]["ap50"]["value"] == 1.0
    assert s["state=crumpled"]["per_class"]["b"]["ap50"]["value"] == 0.0 and s["state=flat"]["per_class"]["b"]["num_gt"] == 0
    cm = r["confusion_matrix"]["counts"]
    assert cm[0][0] == 20 and cm[1][2] == 20 and cm[2][0] == 10  # found a; missed b (background column); bare-belt boxes
    neg = r["negative_frames"]
    assert neg["num_images"] == 20 and neg["false_positives_per_frame"]["value"] == 0.5
    lo, hi = neg["false_positives_per_frame"]["ci95"]
    assert 0.2 < lo < 0.5 < hi < 0.8


def test_expected_calibration_error_separates_honest_from_overconfident_scores() -> None:
    rng = np.random.default_rng(0)
    box = (10.0, 10.0, 60.0, 60.0)
    honest, over = [], []
    for _ in range(400):
        p = float(rng.uniform(0.1, 1.0))
        hit = bool(rng.random() < p)
        gt = [box] if hit else []
        honest.append(_img(gt, [0] * len(gt), [box], [p], [0]))
        over.append(_img(gt, [0] * len(gt), [box], [min(1.0, p + 0.4)], [0]))
    assert calibration(honest, 2)["ece"] < 0.06 < 0.25 < calibration(over, 2)["ece"]


def test_comparison_names_the_better_model_only_where_significant() -> None:
    box = (10.0, 10.0, 60.0, 60.0)
    a = [_img([box], [0], [], [], []) for _ in range(30)] + [_img([], [], [box, box], [0.6, 0.7], [1, 1]) for _ in range(10)]
    b = [_img([box], [0], [box], [0.9], [0]) for _ in range(30)] + [_img([], [], [], [], []) for _ in range(10)]
    c = compare_images(a, b, CLASSES, n_resamples=300)
    assert c["all"]["map50"]["significant"] and c["all"]["map50"]["b"] == 1.0
    lines = significant_lines(c, ("shipped", "tuned"))
    assert any(line.startswith("mAP@0.5: shipped 0.000 vs tuned 1.000") and line.endswith("tuned better") for line in lines)
    assert any("false positives per bare-belt frame: shipped 2.00 vs tuned 0.00" in line for line in lines)
    assert significant_lines(compare_images(a, a, CLASSES, n_resamples=100)) == []


def test_light_tag() -> None:
    assert light_tag(np.full((8, 8, 3), 30, np.uint8)) == "dark"
    assert light_tag(np.full((8, 8, 3), 120, np.uint8)) == "normal"
    assert light_tag(np.full((8, 8, 3), 220, np.uint8)) == "bright"
