"""A new detector model on reload, and back with ``POST /rollback``, while the line runs: through the real HTTP
endpoint, real ONNX Runtime sessions and each model's parity self-test against its golden outputs."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import onnx
import yaml

from sorter.config import load_config
from sorter.detect.model_files import default_model_path, file_sha256
from sorter.runtime.line import build_line
from sorter.runtime.loops import run_line
from sorter.runtime.service_setup import start_service

TOKEN = "switch-test-token"


def _post(port: int, path: str, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"", method="POST")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _model(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        out: dict[str, Any] = json.loads(r.read())["model"]
        return out


def _retrained(src: Path, dst: Path, note: str) -> None:
    """The shipped model as a registry would hand over another one: same outputs, other bytes (a new SHA-256)."""
    m = onnx.load(str(src))
    m.metadata_props.add(key="note", value=note)
    onnx.save(m, str(dst))


def test_reload_switches_the_model_live_and_rollback_swaps_it_back(tmp_path: Path) -> None:
    shipped = default_model_path()
    models = tmp_path / "models"
    models.mkdir()
    live = models / "line.onnx"
    golden = shipped.with_name(shipped.stem + ".golden.json")
    shutil.copy(shipped, live)
    shutil.copy(golden, models / "line.golden.json")
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({
        "detector": {"type": "onnxruntime", "model": str(live)},
        "service": {"http_port": 0, "token": TOKEN},
        "sim": {"density_per_m2": 1},
        "camera": {"fps": 10},
    }))
    files = ["configs/sim-airjet.yaml", str(site)]
    line = build_line(load_config(files), fast=False)
    service, server = start_service(line, lambda: load_config(files))
    assert server is not None and service.models is not None
    sha_old = file_sha256(live)
    stop = threading.Event()
    runner = threading.Thread(target=lambda: run_line(line, None, False, stop), name="line")
    runner.start()
    try:
        t_end = time.monotonic() + 60
        while line.counters.frames < 3 and time.monotonic() < t_end:
            time.sleep(0.1)
        assert line.counters.frames >= 3
        first = line.detector
        assert _model(server.port)["active"]["sha256"] == sha_old[:12]
        assert _post(server.port, "/rollback", token=None)[0] == 401  # a control: the token is needed
        code, reply = _post(server.port, "/rollback")
        assert code == 409 and "no previous model" in reply["message"].lower()

        # a reload with the same model file changes nothing
        assert _post(server.port, "/reload") == (200, {"ok": True, "message": "no change"})

        # the registry puts a new model behind the same path: the reload builds, warms up and checks it, then swaps it in
        _retrained(shipped, live, "retrained on plant frames")
        sha_new = file_sha256(live)
        code, reply = _post(server.port, "/reload")
        assert code == 200 and reply["ok"], reply
        assert f"sha256 {sha_new[:12]}" in reply["message"] and "parity self-test passed" in reply["message"]
        m = _model(server.port)
        assert m["active"]["sha256"] == sha_new[:12] and m["previous"]["sha256"] == sha_old[:12]
        assert m["switches"] == 1 and m["pending"] is False
        assert line.detector is not first and line.pipeline.detector is line.detector
        frames_at_switch = line.counters.frames

        # a model that fails its parity self-test is refused; the running one stays
        _retrained(shipped, live, "broken export")
        bad = json.loads((models / "line.golden.json").read_text())
        (models / "line.golden.json").write_text(json.dumps(_spoil(bad)))
        running = line.detector
        code, reply = _post(server.port, "/reload")
        assert code == 409 and "parity self-test" in reply["message"] and "running" in reply["message"]
        assert line.detector is running and _model(server.port)["active"]["sha256"] == sha_new[:12]

        # rollback: the previous model (still loaded) is back at once
        code, reply = _post(server.port, "/rollback")
        assert code == 200 and reply["ok"] and sha_old[:12] in reply["message"], reply
        m = _model(server.port)
        assert m["active"]["sha256"] == sha_old[:12] and m["rollbacks"] == 1
        assert line.detector is first
        t_end = time.monotonic() + 30
        while line.counters.frames < frames_at_switch + 3 and time.monotonic() < t_end:
            time.sleep(0.1)
        assert line.counters.frames >= frames_at_switch + 3  # the line kept detecting through all of it
    finally:
        stop.set()
        runner.join(30.0)
        server.close()
        service.close()
    assert not runner.is_alive()


def _spoil(golden: Any) -> Any:
    """The golden file with every fp32 box moved 80 px (what a wrongly exported model would be compared against)."""
    out = golden["outputs"]["fp32"]
    out["boxes"] = [[x0 + 80, y0 + 80, x1 + 80, y1 + 80] for x0, y0, x1, y1 in out["boxes"]]
    return golden
