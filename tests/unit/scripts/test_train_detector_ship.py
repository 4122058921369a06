"""Shipping a fine-tuned run keeps the lineage of the model it replaces."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.unit.scripts.script_module import load_script

train_detector = load_script("train_detector")


def _old_models(tmp_path: Path, base: dict[str, Any] | None = None) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    (models / "default.onnx").write_bytes(b"old weights")
    old = {
        "command": "train_detector.py --out runs/a --epochs 21",
        "code_version": "0.1.0+abc",
        "heldout": {"fp32": {"map50": 0.95, "map": 0.78}},
    }
    if base is not None:
        old["base"] = base
    (models / "metrics.json").write_text(json.dumps(old), encoding="utf-8")
    return models


def test_a_run_initialised_from_the_shipped_model_records_it(tmp_path: Path) -> None:
    models = _old_models(tmp_path)
    run = {"command": "sorter train --init sorter/models/default.onnx --look mixed --epochs 3"}
    base = train_detector.base_record(run, models)
    assert base is not None
    assert base["sha256"] == hashlib.sha256(b"old weights").hexdigest()
    assert base["command"] == "train_detector.py --out runs/a --epochs 21"
    assert (base["heldout_map50"], base["heldout_map"]) == (0.95, 0.78)
    lines = train_detector._base_lines(base)
    assert any("Fine-tuned from the previous default" in line for line in lines)
    assert "train_detector.py --out runs/a --epochs 21" in lines


def test_a_chain_of_fine_tunes_keeps_every_ancestor(tmp_path: Path) -> None:
    grand = {
        "sha256": "f" * 64,
        "command": "sorter train --out runs/first",
        "code_version": None,
        "heldout_map50": 0.9,
        "heldout_map": 0.7,
    }
    models = _old_models(tmp_path, base=grand)
    base = train_detector.base_record({"command": "sorter train --init sorter/models/default.onnx"}, models)
    assert base is not None and base["base"] == grand
    text = "\n".join(train_detector._base_lines(base))
    assert text.count("Fine-tuned from the previous default") == 2
    assert "sorter train --out runs/first" in text


def test_a_run_from_scratch_or_from_another_model_has_no_base(tmp_path: Path) -> None:
    models = _old_models(tmp_path)
    assert train_detector.base_record({"command": "sorter train --out runs/x --seed 0"}, models) is None
    assert train_detector.base_record({"command": "sorter train --init runs/plant/model.onnx"}, models) is None
    assert train_detector._base_lines(None) == []
