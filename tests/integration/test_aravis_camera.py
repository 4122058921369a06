"""GenICam capture through Aravis against a GigE Vision camera on loopback: Aravis's own fake GigE camera
(``arv-fake-gv-camera-0.8``), spoken to over the real GVCP/GVSP protocol. It streams, is unplugged (killed) and
comes back; an absent camera is named with the cameras found; every supported pixel format converts to BGR."""

from __future__ import annotations

import itertools
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sorter.capture.aravis_source import AravisSource, load_aravis, to_bgr
from sorter.capture.backoff import Backoff
from sorter.clock import MonotonicClock
from sorter.config import CameraConfig
from sorter.errors import DeviceNotConnectedError

FAKE_GV = "arv-fake-gv-camera-0.8"  # Debian package aravis-tools


def _aravis_ready() -> str | None:
    try:
        load_aravis()
    except DeviceNotConnectedError as e:
        return str(e)
    return None if shutil.which(FAKE_GV) else f"{FAKE_GV} not found (apt-get install aravis-tools)"


needs_aravis = pytest.mark.skipif(_aravis_ready() is not None, reason=f"Aravis not installed: {_aravis_ready()}")


class FakeGigECamera:
    """The fake GigE Vision camera process, listening on 127.0.0.1."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def plug_in(self) -> None:
        self.proc = subprocess.Popen([FAKE_GV, "-i", "127.0.0.1", "-s", "SORTER01"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # binds its GVCP port

    def unplug(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def gige_camera() -> Iterator[FakeGigECamera]:
    cam = FakeGigECamera()
    cam.plug_in()
    try:
        yield cam
    finally:
        cam.unplug()


def _source(**over: object) -> AravisSource:
    fields: dict[str, Any] = {"type": "aravis", "uri": "127.0.0.1", "width_px": 512, "height_px": 512, "fps": 20,
                              "stale_after_ms": 300, **over}
    return AravisSource(CameraConfig(**fields), MonotonicClock(), lambda t_ns: t_ns / 1e6, read_timeout_s=0.5,
                        backoff=Backoff(initial_s=0.05, max_s=0.3, jitter=0.0))


def _wait_state(src: AravisSource, state: str, timeout_s: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if src.health().state == state:
            return time.monotonic() - t0
        src.latest(0.02)
    raise AssertionError(f"never {state}: {src.health()}")


@needs_aravis
def test_streams_stamped_frames_and_survives_an_unplug(gige_camera: FakeGigECamera) -> None:
    src = _source()
    src.start()
    try:
        frames = []
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            f = src.latest(0.5)
            if f is not None:
                frames.append((f, time.monotonic_ns()))
        assert len(frames) >= 25  # 20 fps for 2 s, less start-up
        f0 = frames[-1][0]
        assert f0.image.shape == (512, 512, 3) and f0.image.dtype == np.uint8
        assert f0.image.std() > 10  # the camera's test pattern, not an empty buffer
        stamps = [f.t_capture_ns for f, _ in frames]
        assert all(b > a for a, b in itertools.pairwise(stamps))
        assert all(0 <= got - f.t_capture_ns < 200e6 for f, got in frames)  # stamped at completion, on our clock
        period_ms = np.median(np.diff(stamps)) / 1e6
        assert 40 <= period_ms <= 60, period_ms  # the camera's 20 fps
        assert all(f.s_capture_mm == pytest.approx(f.t_capture_ns / 1e6) for f, _ in frames)  # odometer at the stamp
        assert src.pixel_format == "BayerRG8"  # the camera also offers Mono8: colour is preferred, demosaiced to BGR
        assert src.health().state == "streaming"

        gige_camera.unplug()  # cable pulled
        assert _wait_state(src, "stale", 2.0) < 1.0
        _wait_state(src, "reconnecting", 5.0)
        assert src.latest(0.3) is None
        gige_camera.plug_in()
        _wait_state(src, "streaming", 10.0)
        assert src.latest(1.0) is not None and src.reconnects == 1
    finally:
        src.close()
    assert src.health().state == "closed"


@needs_aravis
def test_absent_camera_names_what_was_found() -> None:
    src = _source(uri="Basler-NOPE")
    with pytest.raises(DeviceNotConnectedError, match=r"could not be opened.*cameras found.*arv-tool-0.8"):
        src.start()


@needs_aravis
def test_preflight_opens_the_camera(gige_camera: FakeGigECamera, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from sorter.calib_store import CalibrationStore
    from sorter.cli import main as cli_main
    from sorter.geometry import CameraModel

    cam = CameraModel.looking_down(512, 512, 40.0, 900.0, 600.0)
    lens = {"width_px": 512, "height_px": 512, "fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy, "dist": list(cam.dist)}
    store = CalibrationStore(tmp_path / "calib", "gige-line")
    now = datetime.now(UTC)
    store.add("intrinsics", {**lens, "rms_px": 0.3, "passed": True, "problems": []}, now)
    store.add("belt", {**lens, "rvec": list(cam.rvec), "tvec_mm": list(cam.tvec_mm), "rms_mm": 0.4, "passed": True,
                       "problems": []}, now)
    rc = cli_main(["check", "--set", "line.name=gige-line", "--set", "camera.type=aravis", "--set", "camera.uri=127.0.0.1",
                   "--set", "camera.width_px=512", "--set", "camera.height_px=512",
                   "--set", f"camera.calibration_file={tmp_path / 'calib' / 'gige-line'}",
                   "--set", "detector.type=onnxruntime", "--set", "actuator.type=dry_run"])
    out = capsys.readouterr().out
    assert "aravis 127.0.0.1: frame 512x512" in out, out
    assert rc == 0, out


def test_pixel_formats_convert_to_bgr() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    assert np.array_equal(to_bgr(rgb.tobytes(), 6, 4, "RGB8"), rgb[..., ::-1])
    assert np.array_equal(to_bgr(rgb.tobytes(), 6, 4, "BGR8"), rgb)
    mono = rgb[..., 0]
    out = to_bgr(mono.tobytes(), 6, 4, "Mono8")
    assert out.shape == (4, 6, 3) and all(np.array_equal(out[..., c], mono) for c in range(3))
    assert np.array_equal(to_bgr((mono.astype(np.uint16) << 8).tobytes(), 6, 4, "Mono16")[..., 1], mono)
    # a flat red scene seen through an RGGB mosaic (GenICam BayerRG8) comes out red
    bayer = np.zeros((8, 8), np.uint8)
    bayer[0::2, 0::2] = 200
    b, g, r = to_bgr(bayer.tobytes(), 8, 8, "BayerRG8")[3:5, 3:5].reshape(-1, 3).mean(axis=0)
    assert r > 150 and g < 30 and b < 30
    assert cv2.COLOR_BayerBG2BGR != cv2.COLOR_BayerRG2BGR
    with pytest.raises(ValueError, match="needs 72 bytes"):
        to_bgr(b"\0" * 10, 6, 4, "RGB8")
    with pytest.raises(ValueError, match=r"YUV422_8 is not supported.*Mono8"):
        to_bgr(b"\0" * 100, 6, 4, "YUV422_8")
