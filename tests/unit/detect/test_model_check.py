"""The model contract in numbers: declared inputs/outputs against the spec, one inference's outputs checked."""

from __future__ import annotations

import numpy as np

from sorter.detect.model_check import TensorInfo, io_problems, output_problems
from sorter.detect.spec import ModelSpec

SPEC = ModelSpec()
K = SPEC.top_k
GOOD_IN = [TensorInfo("images", (1, 3, 224, 384))]
GOOD_OUT = [TensorInfo("boxes", (1, K, 4)), TensorInfo("scores", (1, K)), TensorInfo("classes", (1, K))]


def _outputs(boxes: object = None, scores: object = None, classes: object = None) -> list[np.ndarray]:
    return [
        np.zeros((1, K, 4), np.float32) if boxes is None else np.asarray(boxes),
        np.zeros((1, K), np.float32) if scores is None else np.asarray(scores),
        np.zeros((1, K), np.int64) if classes is None else np.asarray(classes),
    ]


def test_matching_io_and_dynamic_dimensions_pass() -> None:
    assert io_problems(GOOD_IN, GOOD_OUT, SPEC) == []
    dynamic = [TensorInfo("images", (None, 3, None, None))]
    assert io_problems(dynamic, GOOD_OUT, SPEC) == []


def test_io_mismatches_are_named() -> None:
    assert "expected one input named 'images'" in io_problems([TensorInfo("x", (1, 3, 224, 384))], GOOD_OUT, SPEC)[0]
    (p,) = io_problems([TensorInfo("images", (1, 3, 320, 320))], GOOD_OUT, SPEC)
    assert "is 1x3x320x320, but its metadata says 1x3x224x384" in p
    (p,) = io_problems(GOOD_IN, GOOD_OUT[:2], SPEC)
    assert "missing ['classes']" in p
    (p,) = io_problems(GOOD_IN, [GOOD_OUT[0], TensorInfo("scores", (1, 50)), GOOD_OUT[2]], SPEC)
    assert "'scores' is 1x50, expected 1x100" in p


def test_good_outputs_pass_and_count_detections() -> None:
    scores = np.zeros((1, K), np.float32)
    scores[0, :3] = 0.9
    problems, found = output_problems(_outputs(scores=scores), SPEC, 0.5)
    assert problems == [] and found == 3


def test_garbage_outputs_are_named() -> None:
    def first(**kw: object) -> str:
        problems, _ = output_problems(_outputs(**kw), SPEC, 0.5)  # type: ignore[arg-type]
        assert problems
        return problems[0]

    assert "'boxes' of shape 100x4" in first(boxes=np.zeros((K, 4)))
    assert "non-finite 'scores'" in first(scores=np.full((1, K), np.nan))
    assert "non-finite 'boxes'" in first(boxes=np.full((1, K, 4), np.inf))
    assert "outside 0..1" in first(scores=np.full((1, K), -1.0))
    assert "class ids from 6 to 6" in first(classes=np.full((1, K), 6))
    assert "whole numbers" in first(classes=np.full((1, K), 0.5))
    assert "box coordinates up to 1e+06" in first(boxes=np.full((1, K, 4), 1e6))
    assert "reports 100 objects" in first(scores=np.full((1, K), 0.9))
    assert "expected numbers" in first(scores=np.full((1, K), "x"))
    problems, _ = output_problems(_outputs()[:2], SPEC, 0.5)
    assert "gave 2 outputs, expected 3" in problems[0]
