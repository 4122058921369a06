"""`sorter check` catches the mistakes that used to pass it: a camera whose frames are not the calibrated size, a link
whose requirements are missing (socat, the serial device), a heartbeat the controller's watchdog cannot live with, and
a valve delay that makes every command late. Each is a clear FAIL or configuration problem, never a traceback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from sorter.calib_store import CalibrationStore
from sorter.cli import main as cli_main
from sorter.geometry import CameraModel

CAM = CameraModel.looking_down(1280, 720, 60.0, 1100.0, 600.0, dist=(-0.04, 0.01, 0.0, 0.0, 0.0))


def _measured_store(root: Path) -> Path:
    lens = {"width_px": 1280, "height_px": 720, "fx": CAM.fx, "fy": CAM.fy, "cx": CAM.cx, "cy": CAM.cy}
    lens["dist"] = list(CAM.dist)
    store = CalibrationStore(root, "line-1")
    now = datetime.now(UTC)
    ok = {"passed": True, "problems": [], "provenance": "measured"}
    store.add("intrinsics", {**lens, "rms_px": 0.2, **ok}, now)
    store.add("belt", {**lens, "rvec": list(CAM.rvec), "tvec_mm": list(CAM.tvec_mm), "rms_mm": 0.3, **ok}, now)
    return root / "line-1"


def _clip(path: Path, w: int, h: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (w, h))
    assert writer.isOpened()
    for i in range(10):
        writer.write(np.full((h, w, 3), 40 + 10 * i, np.uint8))
    writer.release()
    return path


def _lines(out: str, verdict: str) -> dict[str, str]:
    return {ln.split()[1]: ln for ln in out.splitlines() if ln.startswith(f"  {verdict}")}


def test_camera_frames_of_another_size_than_the_calibration_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _measured_store(tmp_path / "cal")
    video = ["--set", "camera.type=video", "--set", "detector.type=oracle", "--timeout", "3"]
    video += ["--set", f"camera.calibration_file={store}"]
    cli_main(["check", *video, "--set", f"camera.uri={_clip(tmp_path / 'tall.avi', 368, 656)}"])
    cap = capsys.readouterr()
    camera = _lines(cap.out, "FAIL")["camera"]
    assert "gives 368x656 px frames but the calibration" in camera and "is for 1280x720 px" in camera
    assert "Traceback" not in cap.out + cap.err
    cli_main(["check", *video, "--set", f"camera.uri={_clip(tmp_path / 'right.avi', 1280, 720)}"])
    assert "frame 1280x720, as calibrated" in _lines(capsys.readouterr().out, "PASS")["camera"]


def test_a_run_on_frames_of_another_size_than_the_calibration_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _measured_store(tmp_path / "cal")
    summary = tmp_path / "s.json"
    run = ["run", "--set", "camera.type=video", "--set", "actuator.type=dry_run", "--set", f"camera.calibration_file={store}"]
    run += ["--set", f"camera.uri={_clip(tmp_path / 'tall.avi', 368, 656)}"]
    run += ["--duration", "2", "--quiet", "--summary", str(summary)]
    cli_main(run)
    cap = capsys.readouterr()
    assert "frames are 368x656 px but the camera calibration is for 1280x720" in cap.out + cap.err
    assert json.loads(summary.read_text(encoding="utf-8"))["faults"].get("camera_size") == 1
    assert "Traceback" not in cap.out + cap.err


def test_emulated_serial_link_without_socat_fails_check_and_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without socat
    assert cli_main(["check", "--config", "sim-airjet-serial.yaml", "--set", "detector.type=oracle"]) == 2
    cap = capsys.readouterr()
    controller = _lines(cap.out, "FAIL")["controller"]
    assert "needs 'socat', which is not installed" in controller and "apt-get install socat" in controller
    assert cli_main(["run", "--config", "sim-airjet-serial.yaml", "--fast", "--duration", "2", "--quiet"]) == 2
    cap = capsys.readouterr()
    assert "cannot start: actuator.type = serial" in cap.err and "socat" in cap.err
    assert "Traceback" not in cap.out + cap.err


def test_serial_port_that_is_not_a_device_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "ttyUSB0"
    plain.write_text("")
    link = ["--config", "sim-airjet-serial.yaml", "--set", "actuator.emulator=false", "--set", "detector.type=oracle"]
    assert cli_main(["check", *link, "--set", f"actuator.serial.url={plain}"]) == 2
    assert "is not a serial device" in _lines(capsys.readouterr().out, "FAIL")["controller"]
    assert cli_main(["check", *link, "--set", f"actuator.serial.url={tmp_path / 'ttyACM9'}"]) == 2
    controller = _lines(capsys.readouterr().out, "FAIL")["controller"]
    assert "ttyACM9' does not exist" in controller and "/dev/serial/by-id/" in controller


@pytest.mark.parametrize("link", ["serial", "modbus"])
def test_heartbeat_too_slow_for_the_watchdog_fails(link: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["check", "--config-only", "--config", f"sim-airjet-{link}.yaml", "--set", f"actuator.{link}.heartbeat_ms=60"])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"actuator.{link}.heartbeat_ms = 60: the controller closes every valve 100 ms after the last heartbeat" in err
    assert "set it below 50" in err


def test_valve_delay_that_makes_every_command_late_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["check", "--config-only", "--set", "airjet.valves.latency_ms=200"]) == 2
    err = capsys.readouterr().err
    assert "airjet.valves.latency_ms: a valve delay of 200 ms" in err and "every command would be late" in err
    assert "raise airjet.decide_before_mm" in err
    # the same delay with room to decide passes
    ok = ["--set", "airjet.valves.latency_ms=200", "--set", "airjet.decide_before_mm=500", "--set", "airjet.y_eject_mm=1200"]
    assert cli_main(["check", "--config-only", *ok]) == 0
