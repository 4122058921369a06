"""`sorter run` as a service: the HTTP endpoint, token-guarded pause/resume, live config reload, SIGTERM, a busy port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(path: Path, port: int, **changes: Any) -> None:
    cfg: dict[str, Any] = {
        "detector": {"type": "oracle"},
        "policy": {"targets": ["pet_bottle", "hdpe_container"]},
        "sim": {"density_per_m2": 3.0},
        "service": {"http_port": port, "token": TOKEN},
    }
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        cfg.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")


def _request(port: int, path: str, method: str = "GET", token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


def _status(port: int) -> dict[str, Any]:
    code, body = _request(port, "/status")
    assert code == 200
    out: dict[str, Any] = json.loads(body)
    return out


def _wait(pred: Any, timeout_s: float, what: str) -> None:
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        try:
            if pred():
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_service_endpoint_controls_and_reload(tmp_path: Path) -> None:
    port = _free_port()
    cfg_path = tmp_path / "line.yaml"
    _config(cfg_path, port)
    summary = tmp_path / "summary.json"
    proc = subprocess.Popen(
        # the states asserted are those of pause, reload and the controller, whatever the machine's load
        [sys.executable, "-m", "sorter.cli", "run", "--quiet", "--config", str(cfg_path), "--summary", str(summary),
         "--set", "runtime.overload_degrades=false"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait(lambda: _request(port, "/healthz")[0] == 200, 30.0, "/healthz 200")
        _wait(lambda: _status(port)["frames"] > 30, 10.0, "frames")

        code, body = _request(port, "/metrics")
        text = body.decode()
        assert code == 200 and 'sorter_state{state="running"} 1' in text
        frames = float(next(ln for ln in text.splitlines() if ln.startswith("sorter_frames_total ")).split()[1])
        assert frames > 30
        assert 'sorter_stage_latency_ms{quantile="0.99",stage="detect"}' in text  # prometheus_client sorts label names

        code, jpg = _request(port, "/frame.jpg")
        img = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
        assert code == 200 and img is not None and img.shape == (720, 1280, 3)
        code, page = _request(port, "/")
        assert code == 200 and b"/frame.jpg" in page

        # controls need the token
        assert _request(port, "/pause", "POST")[0] == 401
        assert _request(port, "/pause", "POST", token="wrong")[0] == 401
        code, body = _request(port, "/pause", "POST", token=TOKEN)
        assert code == 200 and json.loads(body)["state"] == "paused"
        sent_at_pause = _status(port)["commands"]["sent"]
        _wait(lambda: _status(port)["commands"]["held_while_paused"] > 0, 20.0, "a command held while paused")
        assert _status(port)["commands"]["sent"] == sent_at_pause  # nothing reaches the valves while paused
        code, body = _request(port, "/resume", "POST", token=TOKEN)
        assert code == 200 and json.loads(body)["state"] == "running"

        # a safe change is applied live
        _config(cfg_path, port, policy__targets=["alu_can"], detector__min_score=0.4)
        code, body = _request(port, "/reload", "POST", token=TOKEN)
        assert code == 200, body
        assert "policy.targets" in json.loads(body)["message"]
        assert _status(port)["targets"] == ["alu_can"]
        # a bad value is refused and the running config stays
        _config(cfg_path, port, policy__targets=["alu_can"], policy__min_confidence=7)
        code, body = _request(port, "/reload", "POST", token=TOKEN)
        assert code == 409 and "policy.min_confidence" in json.loads(body)["message"]
        # an unsafe change is refused with the key named
        _config(cfg_path, port, policy__targets=["alu_can"], airjet__y_eject_mm=900.0)
        code, body = _request(port, "/reload", "POST", token=TOKEN)
        assert code == 409 and "airjet.y_eject_mm" in json.loads(body)["message"]
        st = _status(port)
        assert st["targets"] == ["alu_can"] and st["state"] == "running" and st["reloads"] == 1

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert time.monotonic() - t0 < 10.0  # a stop that hangs, not a slow one on a busy machine
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    s = json.loads(summary.read_text())
    assert s["commands_executed_late"] == 0 and s["frames"] > 30


def test_a_port_in_use_stops_start_up_with_a_reason(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = int(busy.getsockname()[1])
        r = subprocess.run(
            [sys.executable, "-m", "sorter.cli", "run", "--quiet", "--duration", "1",
             "--set", "detector.type=oracle", "--set", f"service.http_port={port}"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
    assert r.returncode == 2
    assert f"service.http_port {port}" in r.stderr and "already in use" in r.stderr
