"""Golden outputs for the parity self-test of an accelerated backend.

``<stem>.golden.json`` beside a model holds one preprocessed input (a
letterboxed rendered frame, PNG in base64) and the decoded outputs ONNX Runtime
produced on the CPU for each precision variant. A backend that loads an engine
runs the same input and must reproduce the confident detections: same class,
boxes within an IoU bound and scores within a tolerance per precision.
Pure numpy + OpenCV (ONNX Runtime only to *make* the file).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from sorter.detect.pipeline import RawOutputs
from sorter.entities import ImageArray

#: Only detections at least this confident take part in the comparison.
PARITY_MIN_SCORE = 0.3
#: precision -> (min IoU of matched boxes, max score difference)
TOLERANCES: dict[str, tuple[float, float]] = {"fp32": (0.97, 0.01), "fp16": (0.9, 0.04), "int8": (0.8, 0.12)}


@dataclass(frozen=True)
class Golden:
    """A golden input and the reference outputs per precision."""

    canvas: ImageArray
    outputs: dict[str, RawOutputs]


def encode_golden(canvas: ImageArray, outputs: dict[str, RawOutputs]) -> dict[str, Any]:
    """JSON-ready dict of a golden input and its outputs."""
    ok, png = cv2.imencode(".png", canvas)
    if not ok:
        raise RuntimeError("cannot PNG-encode the golden input")
    return {
        "input_png_base64": base64.b64encode(png.tobytes()).decode("ascii"),
        "parity_min_score": PARITY_MIN_SCORE,
        "outputs": {
            p: {
                "boxes": np.round(b.reshape(-1, 4), 3).tolist(),
                "scores": np.round(s.reshape(-1), 5).tolist(),
                "classes": c.reshape(-1).tolist(),
            }
            for p, (b, s, c) in outputs.items()
        },
    }


def load_golden(path: Path) -> Golden:
    """Read a golden file."""
    d = json.loads(path.read_text(encoding="utf-8"))
    png = np.frombuffer(base64.b64decode(d["input_png_base64"]), np.uint8)
    canvas = cv2.imdecode(png, cv2.IMREAD_COLOR)
    if canvas is None:
        raise ValueError(f"golden file '{path}' has an unreadable input image")
    outs: dict[str, RawOutputs] = {}
    for p, o in d["outputs"].items():
        outs[p] = (
            np.asarray(o["boxes"], np.float32).reshape(1, -1, 4),
            np.asarray(o["scores"], np.float32).reshape(1, -1),
            np.asarray(o["classes"], np.int32).reshape(1, -1),
        )
    return Golden(np.asarray(canvas, np.uint8), outs)


def _iou(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    iw = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.asarray(inter / np.maximum(union, 1e-9), np.float32)


def _unmatched(ref: RawOutputs, test: RawOutputs, min_score: float, iou_min: float, score_tol: float) -> list[str]:
    rb, rs, rc = ref[0].reshape(-1, 4), ref[1].reshape(-1), ref[2].reshape(-1)
    tb, ts, tc = test[0].reshape(-1, 4), test[1].reshape(-1), test[2].reshape(-1)
    problems = []
    cand = ts >= max(0.0, min_score - score_tol)
    for k in np.flatnonzero(rs >= min_score):
        same = cand & (tc == rc[k])
        if not same.any():
            problems.append(f"class {int(rc[k])} score {rs[k]:.3f} at {np.round(rb[k], 1).tolist()}: no detection of that class")
            continue
        ious = np.where(same, _iou(rb[k], tb), 0.0)
        j = int(np.argmax(ious))
        if ious[j] < iou_min or abs(float(ts[j] - rs[k])) > score_tol:
            problems.append(
                f"class {int(rc[k])} score {rs[k]:.3f} at {np.round(rb[k], 1).tolist()}: "
                f"best match IoU {ious[j]:.3f}, score {ts[j]:.3f}"
            )
    return problems


def compare(reference: RawOutputs, test: RawOutputs, precision: str) -> list[str]:
    """Differences between confident detections of ``reference`` and ``test`` (empty: parity holds).

    Both directions are checked, so an engine neither loses nor invents confident objects.
    """
    iou_min, tol = TOLERANCES[precision]
    missing = _unmatched(reference, test, PARITY_MIN_SCORE, iou_min, tol)
    extra = _unmatched(test, reference, PARITY_MIN_SCORE + tol, iou_min, tol)
    return [f"missing {p}" for p in missing] + [f"extra {p}" for p in extra]
