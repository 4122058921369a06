"""Golden-output parity comparison used by the TensorRT self-test."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sorter.detect.golden import compare, encode_golden, load_golden


def _outputs(boxes: list[list[float]], scores: list[float], classes: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.asarray(boxes, np.float32).reshape(1, -1, 4),
        np.asarray(scores, np.float32).reshape(1, -1),
        np.asarray(classes, np.int32).reshape(1, -1),
    )


REF = _outputs([[10, 10, 50, 60], [100, 40, 160, 90], [0, 0, 5, 5]], [0.92, 0.71, 0.05], [0, 3, 1])


def test_identical_and_reordered_outputs_agree() -> None:
    assert compare(REF, REF, "fp32") == []
    b, s, c = REF
    perm = [1, 0, 2]
    assert compare(REF, (b[:, perm], s[:, perm], c[:, perm]), "fp32") == []


def test_small_numeric_drift_is_within_fp16_but_not_fp32_tolerance() -> None:
    b, s, c = REF
    drift = (b + np.float32(0.8), s - np.float32(0.02), c)
    assert compare(REF, drift, "fp16") == []
    assert compare(REF, drift, "fp32") != []


def test_lost_wrong_class_and_invented_detections_are_reported() -> None:
    b, s, c = REF
    lost = (b, np.array([[0.92, 0.1, 0.05]], np.float32), c)
    assert any("missing" in p for p in compare(REF, lost, "int8"))
    wrong = (b, s, np.array([[0, 2, 1]], np.int32))
    assert any("no detection of that class" in p for p in compare(REF, wrong, "int8"))
    invented = (b, np.array([[0.92, 0.71, 0.9]], np.float32), c)
    assert any(p.startswith("extra") for p in compare(REF, invented, "int8"))


def test_golden_file_round_trip(tmp_path: Path) -> None:
    import json

    canvas = np.random.default_rng(0).integers(0, 255, (192, 320, 3), dtype=np.uint8)
    path = tmp_path / "m.golden.json"
    path.write_text(json.dumps(encode_golden(canvas, {"fp32": REF, "fp16": REF})))
    g = load_golden(path)
    np.testing.assert_array_equal(g.canvas, canvas)
    assert set(g.outputs) == {"fp32", "fp16"}
    assert compare(REF, g.outputs["fp16"], "fp32") == []
