"""`sorter run` on a real camera source (the recorded conveyor video, decoded by OpenCV): it runs to the end of the
footage, and a camera that disappears mid-run degrades the service, pauses actuation and recovers by itself."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from sorter.calib_store import CalibrationStore
from sorter.geometry import CameraModel

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT.parent / "shared" / "data" / "video" / "delta_robot_green_belt" / "conveyor_belt.mp4"
W_PX, H_PX = 368, 656  # the video's frame size


def _calibration(tmp_path: Path) -> Path:
    cam = CameraModel.looking_down(W_PX, H_PX, 40.0, 900.0, 600.0)
    lens = {"width_px": W_PX, "height_px": H_PX, "fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy, "dist": list(cam.dist)}
    store = CalibrationStore(tmp_path / "calib", "video-line")
    now = datetime.now(UTC)
    store.add("intrinsics", {**lens, "rms_px": 0.3, "passed": True, "problems": []}, now)
    pose = {"rvec": list(cam.rvec), "tvec_mm": list(cam.tvec_mm)}
    store.add("belt", {**lens, **pose, "rms_mm": 0.4, "passed": True, "problems": []}, now)
    return tmp_path / "calib" / "video-line"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


def _wait_state(port: int, states: tuple[str, ...], timeout_s: float) -> dict[str, Any]:
    t_end = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < t_end:
        try:
            last = _status(port)
            if last["state"] in states:
                return last
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"state never became {states}; last status {last}")


def test_video_camera_lost_and_back_then_runs_to_the_end(tmp_path: Path) -> None:
    assert VIDEO.is_file(), f"test data missing: {VIDEO}"
    video = tmp_path / "cam.mp4"
    shutil.copyfile(VIDEO, video)
    port = _free_port()
    cfg = {
        "line": {"name": "video-line"},
        "camera": {"type": "video", "uri": str(video), "width_px": W_PX, "height_px": H_PX, "fps": 30.0,
                   "calibration_file": str(_calibration(tmp_path)), "stale_after_ms": 250.0},
        "detector": {"type": "onnxruntime"},
        "actuator": {"type": "dry_run"},
        "service": {"http_port": port},
    }
    cfg_path = tmp_path / "line.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    summary = tmp_path / "s.json"
    proc = subprocess.Popen(
        # the states asserted are the camera's, whatever the machine's load (an overloaded loop is logged only)
        [sys.executable, "-m", "sorter.cli", "run", "--quiet", "--config", str(cfg_path), "--summary", str(summary),
         "--set", "runtime.overload_degrades=false"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_state(port, ("running",), 30.0)
        time.sleep(1.0)
        data = video.read_bytes()
        video.write_bytes(data[: len(data) // 10])  # the camera "unplugged": reads fail, reopening gives too little
        st = _wait_state(port, ("degraded",), 10.0)
        assert "camera" in st["reason"]
        assert st["faults"]["camera"] >= 1
        faults = st["faults"]["camera"]
        time.sleep(0.5)
        video.write_bytes(data)  # plugged back in
        st = _wait_state(port, ("running",), 10.0)
        assert st["reason"] == "" and st["faults"]["camera"] >= faults
        _out, err = proc.communicate(timeout=60)  # the footage ends: the run stops by itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    s = json.loads(summary.read_text())
    assert s["detector"].startswith("onnxruntime")
    assert 150 <= s["frames"] <= 387  # decoded, stamped and processed; some dropped while reconnecting or busy
    assert s["commands_executed_late"] == 0
