"""The model switcher loads, warms up and parity-checks a model before it replaces the running one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sorter.config import DetectorConfig
from sorter.detect.model_files import MODELS_DIR
from sorter.detect.onnxruntime_backend import create
from sorter.detect.switch import ModelSwitcher, ModelSwitchError
from sorter.entities import MATERIAL_CLASSES


def _build(path: Path):  # type: ignore[no-untyped-def]
    """Exactly this file: the base model plus the precision of the variant (as a service config names them)."""
    from sorter.detect.model_files import read_model_info
    from sorter.detect.switch import base_model

    precision = read_model_info(path).precision
    return create(
        DetectorConfig(type="onnxruntime", model=str(base_model(path)), precision=precision), MATERIAL_CLASSES, threads=1
    )


def _copy(tmp: Path, name: str) -> Path:
    d = tmp / name
    d.mkdir()
    for f in ("default.onnx", "default.int8.onnx", "default.golden.json"):
        shutil.copy2(MODELS_DIR / f, d / f)
    return d / "default.onnx"


def test_switch_checks_parity_keeps_the_previous_model_and_rolls_back(tmp_path: Path) -> None:
    sw = ModelSwitcher(_build, warmup_runs=2)
    first = sw.switch(_copy(tmp_path, "a"))
    assert first.parity_problems == [] and first.precision == "fp32" and first.warmup_ms > 0
    second_path = _copy(tmp_path, "b")
    int8 = second_path.with_name("default.int8.onnx")
    second = sw.switch(int8)
    assert sw.active is second and sw.previous is first and second.precision == "int8"
    # a model whose golden outputs it cannot reproduce is refused; the running one stays
    bad = _copy(tmp_path, "c")
    g = json.loads(bad.with_name("default.golden.json").read_text())
    g["outputs"]["fp32"]["scores"] = [min(1.0, s + 0.3) for s in g["outputs"]["fp32"]["scores"]]
    bad.with_name("default.golden.json").write_text(json.dumps(g))
    with pytest.raises(ModelSwitchError, match="parity self-test"):
        sw.switch(bad)
    assert sw.active is second
    missing = _copy(tmp_path, "d")
    missing.with_name("default.golden.json").unlink()
    with pytest.raises(ModelSwitchError, match=r"golden\.json is missing"):
        sw.switch(missing)
    back = sw.rollback()
    assert back is first and sw.previous is second
    img = __import__("numpy").zeros((224, 384, 3), "uint8")
    from sorter.entities import Frame

    assert len(sw.active.detector.detect(Frame(img, 0, 0.0, 0))) >= 0  # the rolled-back model still serves
    sw.close()
    with pytest.raises(ModelSwitchError, match="no previous model"):
        ModelSwitcher(_build).rollback()
