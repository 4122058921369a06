"""Does a detector model fit its contract? Names and shapes of its inputs and outputs, and one inference.

A model that loads is not yet a model that runs: renamed inputs, another input
size or outputs of the wrong shape only fail on the first frame, and a model
that answers garbage (NaN scores, class ids it does not have, a blank belt full
of "objects") runs without complaint and sorts nothing. Building a detector runs
these checks, so ``sorter check`` printing ``PASS model`` means the run will not
fail on its first frame, and ``sorter run`` refuses such a model before starting.

Pure numpy: the backends hand in what their runtime reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sorter.detect.spec import INPUT_NAME, OUTPUT_NAMES, ModelSpec

if TYPE_CHECKING:
    from sorter.detect.pipeline import EngineDetector

#: a blank frame may show a few false detections; more than this share of top_k above the floor is garbage
MAX_BLANK_DETECTION_SHARE = 0.5
#: the garbage test counts scores from at least this (evaluation runs with min_score 0.01, where a young model's
#: low scores on a blank frame are normal)
BLANK_SCORE_FLOOR = 0.3


@dataclass(frozen=True)
class TensorInfo:
    """One input or output as the runtime reports it (a dimension is an int, or a name/None when dynamic)."""

    name: str
    shape: tuple[int | str | None, ...]


def _fits(shape: Sequence[int | str | None], expected: Sequence[int]) -> bool:
    if len(shape) != len(expected):
        return False
    return all(not isinstance(d, int) or d == e for d, e in zip(shape, expected, strict=True))


def _shape_words(shape: Sequence[object]) -> str:
    return "x".join("?" if not isinstance(d, int) else str(d) for d in shape)


def io_problems(inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo], spec: ModelSpec) -> list[str]:
    """Why the model's declared inputs/outputs do not match ``spec`` (empty: they do)."""
    problems: list[str] = []
    want_in = (1, 3, spec.input_h_px, spec.input_w_px)
    names_in = [t.name for t in inputs]
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        problems.append(f"its inputs are {names_in}, expected one input named '{INPUT_NAME}'")
    elif not _fits(inputs[0].shape, want_in):
        problems.append(
            f"its input '{INPUT_NAME}' is {_shape_words(inputs[0].shape)}, but its metadata says "
            f"{_shape_words(want_in)} (1 x 3 colours x {spec.input_h_px} x {spec.input_w_px} px)"
        )
    names_out = [t.name for t in outputs]
    missing = [n for n in OUTPUT_NAMES if n not in names_out]
    if missing:
        problems.append(f"its outputs are {names_out}, expected {list(OUTPUT_NAMES)} (missing {missing})")
        return problems
    want_out = {"boxes": (1, spec.top_k, 4), "scores": (1, spec.top_k), "classes": (1, spec.top_k)}
    for t in outputs:
        want = want_out.get(t.name)
        if want is not None and not _fits(t.shape, want):
            problems.append(
                f"its output '{t.name}' is {_shape_words(t.shape)}, expected {_shape_words(want)} (top_k = {spec.top_k})"
            )
    return problems


def output_problems(
    outputs: Sequence[npt.NDArray[np.generic]], spec: ModelSpec, min_score: float
) -> tuple[list[str], int]:
    """Check one inference's outputs (on a blank frame); returns the problems and the detections above ``min_score``."""
    if len(outputs) != 3:
        return [f"one inference gave {len(outputs)} outputs, expected 3 ({', '.join(OUTPUT_NAMES)})"], 0
    boxes, scores, classes = (np.asarray(o) for o in outputs)
    k = spec.top_k
    problems: list[str] = []
    for name, arr, want in (("boxes", boxes, (1, k, 4)), ("scores", scores, (1, k)), ("classes", classes, (1, k))):
        if tuple(arr.shape) != want:
            problems.append(f"one inference gave '{name}' of shape {_shape_words(arr.shape)}, expected {_shape_words(want)}")
    if problems:
        return problems, 0
    for name, arr in (("boxes", boxes), ("scores", scores), ("classes", classes)):
        if not np.issubdtype(arr.dtype, np.number):
            problems.append(f"one inference gave '{name}' of type {arr.dtype}, expected numbers")
        elif not np.all(np.isfinite(arr.astype(np.float64))):
            problems.append(f"one inference gave non-finite '{name}' (NaN or infinity)")
    if problems:
        return problems, 0
    s = scores.astype(np.float64).reshape(-1)
    if s.min() < 0.0 or s.max() > 1.0:
        problems.append(f"one inference gave scores from {s.min():.3g} to {s.max():.3g}, outside 0..1")
    c = classes.astype(np.float64).reshape(-1)
    if np.any(c != np.round(c)) or c.min() < 0 or c.max() >= spec.num_classes:
        problems.append(
            f"one inference gave class ids from {c.min():.3g} to {c.max():.3g}, expected whole numbers "
            f"0..{spec.num_classes - 1} ({spec.num_classes} classes)"
        )
    b = boxes.astype(np.float64).reshape(-1, 4)
    reach = 4.0 * max(spec.input_w_px, spec.input_h_px)
    if np.abs(b).max() > reach:
        problems.append(
            f"one inference gave box coordinates up to {np.abs(b).max():.3g} px for a "
            f"{spec.input_w_px}x{spec.input_h_px} px input"
        )
    found = int(np.count_nonzero(s >= min_score))
    floor = max(min_score, BLANK_SCORE_FLOOR)
    confident = int(np.count_nonzero(s >= floor))
    if confident > MAX_BLANK_DETECTION_SHARE * k:
        problems.append(
            f"on a blank frame it reports {confident} objects scoring {floor:g} or more (of {k}): its outputs are garbage"
        )
    return problems, found


def verify_detector(detector: EngineDetector, model: str) -> int:
    """Run one inference on a blank frame and check what comes out; returns the detections it reported.

    Args:
        detector: the built detector.
        model: how to name the model in messages (its file).

    Raises:
        ConfigError: the inference fails or its outputs break the contract, naming the model and the fix.
    """
    from sorter.errors import ConfigError

    spec = detector.spec
    blank = np.full((spec.input_h_px, spec.input_w_px, 3), spec.pad_value, np.uint8)
    tensor, _letterbox = detector.preprocess(blank)
    try:
        outputs = detector.engine.infer(tensor)
    except Exception as e:  # any runtime's failure: the model does not run
        text = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ConfigError(
            f"detector.model: '{model}' loads but one inference on a blank frame fails ({text}); "
            "export it again with 'sorter train --export-only' or use the packaged model"
        ) from None
    problems, found = output_problems(outputs, spec, detector.min_score)
    if problems:
        raise ConfigError(
            f"detector.model: '{model}' does not keep its contract: " + "; ".join(problems) + "; "
            "export it again with 'sorter train --export-only' or use the packaged model"
        )
    return found
