"""Export a trained network as every shipped variant: FP32, FP16, INT8 Q/DQ, and their golden outputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sorter.detect.export import export_onnx, quantize_int8
from sorter.detect.golden import encode_golden
from sorter.detect.model_files import golden_path, variant_path
from sorter.detect.net import CenterNet
from sorter.detect.onnxruntime_backend import OrtEngine
from sorter.detect.pipeline import RawOutputs
from sorter.detect.preprocess import to_tensor
from sorter.entities import ImageArray

log = logging.getLogger(__name__)


def export_variants(
    net: CenterNet,
    model_path: Path,
    calibration: npt.NDArray[np.uint8],
    golden_canvas: ImageArray,
    provenance: dict[str, str] | None = None,
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8"),
) -> dict[str, Path]:
    """Write ``model_path`` (FP32) and its variants beside it, then the golden file.

    Args:
        net: trained network.
        model_path: path of the FP32 file, e.g. ``out/model.onnx``.
        calibration: ``(N, H, W, 3)`` letterboxed uint8 images for INT8 activation ranges.
        golden_canvas: one letterboxed uint8 image for the parity self-test.
        provenance: strings stored in every file's metadata.
        precisions: variants to write (``fp32`` always).

    Returns:
        precision -> path, plus ``golden``.
    """
    meta = dict(provenance or {})
    paths: dict[str, Path] = {"fp32": export_onnx(net, variant_path(model_path, "fp32"), "fp32", meta)}
    if "fp16" in precisions:
        paths["fp16"] = export_onnx(net, variant_path(model_path, "fp16"), "fp16", meta)
    if "int8" in precisions:
        calib = np.stack([to_tensor(c)[0] for c in calibration]).astype(np.float32)
        paths["int8"] = quantize_int8(paths["fp32"], variant_path(model_path, "int8"), calib, meta)
    x = to_tensor(golden_canvas)
    outputs: dict[str, RawOutputs] = {}
    for p, path in paths.items():
        engine = OrtEngine(path, "cpu")
        outputs[p] = engine.infer(x)
        engine.close()
    gp = golden_path(model_path)
    gp.write_text(json.dumps(encode_golden(golden_canvas, outputs)), encoding="utf-8")
    paths["golden"] = gp
    for p, path in paths.items():
        log.info("wrote %s: %s (%.2f MB)", p, path, path.stat().st_size / 1e6)
    return paths
