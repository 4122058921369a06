"""Every shipped ONNX variant parses and builds with a real TensorRT builder, on the CPU (TensorRT-RTX).

``tensorrt-rtx-cu13`` (the ``trt-check`` extra) is a TensorRT builder from PyPI
that compiles engines without a GPU; it is strongly typed like TensorRT 11, so
it checks the FP16 and INT8 Q/DQ variants the way current TensorRT builds them.
"""

from __future__ import annotations

import pytest

from sorter.detect.model_files import MODELS_DIR, read_model_info
from sorter.detect.trt_build import EngineBuildError, build_serialized_engine, is_rtx

SHIPPED = sorted(MODELS_DIR.glob("*.onnx"))


def test_the_default_model_ships_in_three_precisions() -> None:
    names = {p.name for p in SHIPPED}
    assert {"default.onnx", "default.fp16.onnx", "default.int8.onnx"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_variant_builds_with_tensorrt_rtx(path: object) -> None:
    trt = pytest.importorskip("tensorrt_rtx", reason="pip install 'sorter[trt-check]' (tensorrt-rtx-cu13)")
    assert is_rtx(trt)
    from pathlib import Path

    p = Path(str(path))
    precision = read_model_info(p).precision
    engine = build_serialized_engine(trt, p.read_bytes(), precision)
    assert len(engine) > 100_000  # a real plan with the weights, not an empty shell


def test_a_broken_model_fails_with_the_parser_errors() -> None:
    trt = pytest.importorskip("tensorrt_rtx", reason="pip install 'sorter[trt-check]' (tensorrt-rtx-cu13)")
    with pytest.raises(EngineBuildError, match="cannot parse"):
        build_serialized_engine(trt, b"\x08\x07garbage", "fp32")
