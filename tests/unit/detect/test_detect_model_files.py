"""Model file resolution: default model, precision variants, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sorter.detect.model_files import base_stem, default_model_path, golden_path, read_model_info, resolve_model, variant_path
from sorter.errors import ConfigError


def test_variant_and_golden_names() -> None:
    m = Path("/x/plant.onnx")
    assert variant_path(m, "fp32") == m
    assert variant_path(m, "fp16") == Path("/x/plant.fp16.onnx")
    assert variant_path(Path("/x/plant.int8.onnx"), "fp16") == Path("/x/plant.fp16.onnx")
    assert golden_path(Path("/x/plant.fp16.onnx")) == Path("/x/plant.golden.json")
    assert base_stem(Path("default.int8.onnx")) == "default"
    with pytest.raises(ConfigError, match="fp32, fp16, int8"):
        variant_path(m, "bf16")


def test_default_model_resolves_in_every_precision() -> None:
    for p in ("fp32", "fp16", "int8"):
        assert resolve_model(None, p).exists()
    assert resolve_model(None) == default_model_path()


def test_missing_model_and_missing_variant_say_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train one with 'sorter train'"):
        resolve_model(str(tmp_path / "nope.onnx"))
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ConfigError, match="--export-only"):
        resolve_model(str(tmp_path / "m.onnx"), "int8")


def test_foreign_or_broken_onnx_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(g), str(tmp_path / "foreign.onnx"))
    with pytest.raises(ConfigError, match="not exported by 'sorter train'"):
        read_model_info(tmp_path / "foreign.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"\x00\x01garbage")
    with pytest.raises(ConfigError, match="not a readable ONNX file"):
        read_model_info(tmp_path / "broken.onnx")
