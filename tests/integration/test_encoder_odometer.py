"""A real camera on a line with a real controller link: the frames' belt odometer is the controller's encoder.

The camera is the recorded conveyor video decoded by OpenCV; the controller is the valve-controller
emulator behind a socat pseudo-terminal, whose encoder runs at a speed of the test's choosing (not the
config's nominal speed). Every frame's ``s_capture_mm`` must be the controller's count at ``t_capture_ns``,
so that a belt running slower or faster than nominal never shifts the shots.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.controller import ControllerLimits
from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.emulators.valve_controller import ValveControllerEmulator
from firmware_bridge.pty_pair import PtyPair
from sorter.calib_store import CalibrationStore
from sorter.config import load_config
from sorter.geometry import CameraModel
from sorter.runtime.line import build_line

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT.parent / "shared" / "data" / "video" / "delta_robot_green_belt" / "conveyor_belt.mp4"
W_PX, H_PX = 368, 656
SPEED_COUNTS_S = 15_000.0  # 1.5 m/s at 10 counts/mm, while the config's nominal speed says 2.5 m/s


@pytest.fixture
def controller() -> Iterator[tuple[PtyPair, FreeRunningDevice]]:
    pty = PtyPair().start()
    device = FreeRunningDevice(64, SPEED_COUNTS_S, start_count=1_234_567)
    emu = ValveControllerEmulator(pty.device_path, device, ControllerLimits(queue_capacity=256)).start()
    try:
        yield pty, device
    finally:
        emu.stop()
        pty.close()


def _calibration(tmp_path: Path) -> Path:
    cam = CameraModel.looking_down(W_PX, H_PX, 40.0, 900.0, 600.0)
    lens = {"width_px": W_PX, "height_px": H_PX, "fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy, "dist": list(cam.dist)}
    store = CalibrationStore(tmp_path / "calib", "enc-line")
    now = datetime.now(UTC)
    store.add("intrinsics", {**lens, "rms_px": 0.3, "passed": True, "problems": []}, now)
    store.add("belt", {**lens, "rvec": list(cam.rvec), "tvec_mm": list(cam.tvec_mm), "rms_mm": 0.4, "passed": True,
                       "problems": []}, now)
    return tmp_path / "calib" / "enc-line"


def test_real_camera_frames_carry_the_controller_encoder(tmp_path: Path,
                                                          controller: tuple[PtyPair, FreeRunningDevice]) -> None:
    pty, device = controller
    video = tmp_path / "cam.mp4"
    shutil.copyfile(VIDEO, video)
    cfg = load_config(None, [
        "line.name=enc-line", "belt.nominal_speed_mm_s=2500", "camera.type=video", f"camera.uri={video}",
        f"camera.width_px={W_PX}", f"camera.height_px={H_PX}", "camera.fps=30",
        f"camera.calibration_file={_calibration(tmp_path)}", "detector.type=onnxruntime",
        "actuator.type=serial", "actuator.emulator=false", f"actuator.serial.url={pty.host_path}",
    ])
    line = build_line(cfg, fast=False)
    try:
        assert line.odometer_source == "controller encoder"
        encoder = line.actuator.encoder()
        assert encoder is not None
        t_sync = time.monotonic() + 10.0  # the link (in its own process) first learns the count and the belt's speed
        while encoder.speed_counts_per_s() is None and time.monotonic() < t_sync:
            time.sleep(0.05)
        assert encoder.speed_counts_per_s() is not None, "the controller's encoder speed never became known"
        # The speed is first known from probes 0.1 s apart; on a busy machine its first estimates were off by up
        # to 1 % (stamps up to 4.5 mm off for a few frames), until the probe window filled. What is checked here
        # is the steady state, once the link has probed for its whole sync window (2 s).
        time.sleep(2.0)
        line.source.start()
        errors_mm, stamps = [], []
        # 60 frames (2 s at 30 fps), however long a busy machine takes to deliver them
        t_end = time.monotonic() + 60.0
        while len(stamps) < 60 and time.monotonic() < t_end:
            f = line.source.latest(0.5)
            if f is None:
                continue
            stamps.append((f.t_capture_ns, f.s_capture_mm))
            t0_ns = time.monotonic_ns()
            count = device.encoder_count()
            t1_ns = time.monotonic_ns()
            if t1_ns - t0_ns > 200_000:  # this thread was preempted while reading the truth: 0.2 ms is 0.3 mm of belt
                continue
            expected_mm = (count - SPEED_COUNTS_S * ((t0_ns + t1_ns) / 2 - f.t_capture_ns) / 1e9) / 10.0
            errors_mm.append(f.s_capture_mm - expected_mm)
    finally:
        line.source.close()
        line.close()
    assert len(stamps) >= 60 and len(errors_mm) >= 30
    err = np.abs(np.array(errors_mm))
    # alone on 2 cores: median 0.06 mm, max 0.35 mm over 61 frames (0.2 ms of belt travel at 1.5 m/s); inside the full
    # test run a rare frame reached 2.6 mm, once 5.7 mm (a probe answered late while every thread competed for the
    # cores): the stamps must come from the encoder and be right, a stray frame of a busy machine does not fail it
    far = int(np.count_nonzero(err > 5.0))
    assert np.median(err) < 0.3 and np.percentile(err, 90) < 1.0 and far <= len(err) // 20, (np.median(err), err.max(), far)
    (t0, s0), (t1, s1) = stamps[0], stamps[-1]
    speed_mm_s = (s1 - s0) * 1e9 / (t1 - t0)
    assert speed_mm_s == pytest.approx(1500.0, rel=0.02)  # the belt's real speed, not the nominal 2500
    assert s0 > 123_000  # the controller's own count (1,234,567 counts at 10 counts/mm), not zero at start
