"""Promotion gate rules; the registry's files, current model, promotion history and rollback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sorter.detect.model_files import MODELS_DIR, file_sha256
from sorter.errors import ConfigError
from sorter.train.gate import judge
from sorter.train.registry import Registry


def _cmp(a: float, b: float, lo: float, hi: float) -> dict:
    return {
        "num_images": 50,
        "all": {"map50": {"a": a, "b": b, "diff": {"value": b - a, "ci95": [lo, hi]}, "significant": lo > 0 or hi < 0}},
    }


def test_gate_refuses_only_beyond_the_interval_and_past_the_rendered_drop() -> None:
    assert judge(_cmp(0.90, 0.85, -0.12, 0.02), (0.95, 0.94)).passed  # worse, but within the interval
    v = judge(_cmp(0.90, 0.80, -0.15, -0.04), None)
    assert not v.passed and "below zero" in v.reasons[0]
    v = judge(None, (0.9523, 0.9300))
    assert not v.passed and "0.9523 to 0.9300" in v.reasons[0] and "--real-share" in v.reasons[0]
    assert judge(None, (0.9523, 0.9330)).passed
    assert judge(None, None).passed
    r = judge(None, None, ({"frames": 100, "recovery": 0.99, "purity": 1.0}, {"frames": 100, "recovery": 0.97, "purity": 1.0}))
    assert not r.passed and "recovery falls" in r.reasons[0]
    assert not judge(None, None, ({"frames": 100}, None)).passed
    assert not judge(None, None, ({"frames": 100}, {"frames": 90})).passed
    assert judge(None, None, ({"frames": 100, "recovery": 0.99}, {"frames": 100, "recovery": 0.985})).passed


def _run_dir(tmp: Path, name: str, extra: bytes = b"") -> Path:
    d = tmp / name
    d.mkdir()
    for src, dst in (("default.onnx", "model.onnx"), ("default.golden.json", "model.golden.json")):
        shutil.copy2(MODELS_DIR / src, d / dst)
    if extra:  # a different model file (metadata-free trailing bytes would not parse; a copy with other bytes is enough here)
        (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes() + extra)
    (d / "metrics.json").write_text(
        json.dumps(
            {
                "command": f"sorter train --init x.onnx --out {name}",
                "code_version": "0.1.0+abc",
                "seed": 0,
                "map50": 0.95,
                "data": {"dataset_hash": "f" * 64},
                "plant_test": {"map50": {"value": 0.9, "ci95": [0.85, 0.95]}},
            }
        )
    )
    return d


def test_registry_register_promote_rollback(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    a = reg.register(_run_dir(tmp_path, "a"), "2025-01-01T00:00:00+00:00")
    b = reg.register(_run_dir(tmp_path, "b", b"\x00"), "2025-01-02T00:00:00+00:00")
    assert a["id"] == file_sha256(tmp_path / "a" / "model.onnx")[:12] and a["id"] != b["id"]
    assert a["dataset_hashes"] == ["f" * 64] and a["init"] == "x.onnx" and a["code_version"] == "0.1.0+abc"
    assert a["metrics"]["plant_test_map50"] == 0.9
    assert reg.register(tmp_path / "a", "later") == a  # idempotent
    assert [e["id"] for e in reg.entries()] == [a["id"], b["id"]] and reg.current() is None
    with pytest.raises(ConfigError, match="nothing to roll back"):
        reg.rollback("t")
    reg.promote(a["id"], "t1", {"passed": True})
    reg.promote(b["id"][:6], "t2", {"passed": True})
    cur = tmp_path / "reg" / "current"
    assert reg.current()["id"] == b["id"] and (cur / "ID").read_text().strip() == b["id"]
    assert file_sha256(cur / "model.onnx") == b["model_sha256"]
    back = reg.rollback("t3")
    assert back["id"] == a["id"] and file_sha256(cur / "model.onnx") == a["model_sha256"]
    assert [h["action"] for h in reg.history()] == ["promote", "promote", "rollback"]
    with pytest.raises(ConfigError, match="not in the registry"):
        reg.get("nope")
    with pytest.raises(ConfigError, match=r"holds no model\.onnx"):
        reg.register(tmp_path, "t")
