"""Which region the detector looks at (``detector.roi``): the calibrated belt footprint of a real camera, the simulated
mount, an explicit rectangle for footage without a calibration, or the whole frame; bad settings name key, value and
fix; ``sorter check`` prints the region in use."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sorter.calib_store import CalibrationStore
from sorter.cli import main as cli_main
from sorter.config import load_config
from sorter.detect.roi import belt_roi
from sorter.errors import ConfigError
from sorter.geometry import CameraModel
from sorter.runtime.plant import camera_model, detector_roi
from sorter.runtime.preflight import load_line_config

#: a real mount that sees much more than the 1200 mm belt: 70 degrees from 1400 mm, about 1960 mm across
WIDE = CameraModel.looking_down(1920, 1080, hfov_deg=70.0, height_mm=1400.0, centre_x_mm=600.0, dist=(-0.05, 0.01, 0, 0, 0))
VIDEO = ["camera.type=video", "camera.uri=belt.avi", "actuator.type=dry_run"]


def _calibration(root: Path, cam: CameraModel = WIDE) -> Path:
    """A machine's calibration store holding a measured lens and belt pose of ``cam``."""
    lens: dict[str, Any] = {
        "width_px": cam.width_px, "height_px": cam.height_px, "fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy,
        "dist": list(cam.dist),
    }
    store = CalibrationStore(root, "line-1")
    ok = {"passed": True, "problems": [], "provenance": "measured"}
    store.add("intrinsics", {**lens, "rms_px": 0.2, **ok}, datetime.now(UTC))
    store.add("belt", {**lens, "rvec": list(cam.rvec), "tvec_mm": list(cam.tvec_mm), "rms_mm": 0.3, **ok}, datetime.now(UTC))
    return root / "line-1"


def test_a_calibrated_real_camera_looks_at_the_belt_footprint(tmp_path: Path) -> None:
    cfg = load_line_config(None, [*VIDEO, f"camera.calibration_file={_calibration(tmp_path)}"])
    assert (cfg.camera.width_px, cfg.camera.height_px) == (1920, 1080)  # taken from the calibration
    roi = detector_roi(cfg)
    assert roi is not None and roi == belt_roi(camera_model(cfg), 1200.0, 50.0)
    assert 0.6 < roi.share < 0.72 and (roi.y0_px, roi.y1_px) == (0, 1080)
    wider = detector_roi(load_line_config(None, [*VIDEO, f"camera.calibration_file={tmp_path / 'line-1'}",
                                                 "detector.roi.margin_mm=200"]))
    assert wider is not None and wider.x0_px < roi.x0_px and wider.x1_px > roi.x1_px
    full = load_line_config(None, [*VIDEO, f"camera.calibration_file={tmp_path / 'line-1'}", "detector.roi.mode=full"])
    assert detector_roi(full) is None


def test_footage_without_calibration_uses_the_explicit_rectangle_or_the_whole_frame() -> None:
    cfg = load_line_config(None, [*VIDEO, "detector.roi.px=[200, 0, 1100, 720]"], calibration=False)
    roi = detector_roi(cfg)
    assert roi is not None and (roi.x0_px, roi.y0_px, roi.x1_px, roi.y1_px) == (200, 0, 1100, 720)
    assert (roi.frame_w_px, roi.frame_h_px, roi.source) == (1280, 720, "detector.roi.px")
    assert detector_roi(load_line_config(None, VIDEO, calibration=False)) is None  # auto without a camera model


def test_the_simulated_camera_sees_only_belt_so_the_default_region_is_the_whole_frame() -> None:
    cfg = load_config()
    roi = detector_roi(cfg)
    assert roi is not None and roi.is_full  # the view is 1290 mm across, the belt and its margins 1300 mm
    tight = detector_roi(load_config(None, ["detector.roi.margin_mm=0"]))
    assert tight is not None and 0.9 < tight.share < 0.97 and (tight.y0_px, tight.y1_px) == (0, 720)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["detector.roi.px=[10, 10, 5, 20]"], r"'detector.roi.px' = \[10, 10, 5, 20\] is invalid: expected .*x1 > x0"),
        (["detector.roi.px=[-1, 0, 10, 10]"], r"'detector.roi.px' = \[-1, 0, 10, 10\] is invalid: expected .*x0, y0 >= 0"),
        (["detector.roi.px=[1, 2, 3]"], r"'detector.roi.px' = \[1, 2, 3\] is invalid: expected 4 whole numbers"),
        (["detector.roi.px=[0, 0, 100, 100]", "detector.roi.mode=full"], r"both say where to look: remove mode .* or px"),
        (["detector.roi.margin_mm=-5"], r"'detector.roi.margin_mm' = -5 is invalid: expected a number at least 0"),
        (["detector.roi.px=[0, 0, 1300, 700]"], r"roi.px = \[0, 0, 1300, 700\] leaves the 1280x720 px frame .*x1 <= 1280"),
        ([*VIDEO, "detector.roi.mode=belt"], r"detector.roi.mode = belt needs the camera model .*detector.roi.px"),
    ],
)
def test_bad_region_settings_name_key_value_and_fix(overrides: list[str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_line_config(None, overrides, calibration=False)


def test_check_prints_the_region_and_its_share(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _calibration(tmp_path)
    args = [a for o in VIDEO for a in ("--set", o)]
    assert cli_main(["check", "--config-only", *args, "--set", f"camera.calibration_file={store}"]) == 0
    out = capsys.readouterr().out
    roi = detector_roi(load_line_config(None, [*VIDEO, f"camera.calibration_file={store}"]))
    assert roi is not None
    line = f"detector region (detector.roi): x {roi.x0_px}..{roi.x1_px}, y 0..1080 px ({roi.w_px}x1080, "
    assert line in out and f"{100 * roi.share:.0f} % of the 1920x1080 frame; belt 1200 mm + 50 mm margins" in out
    assert cli_main(["check", "--config-only"]) == 0
    sim = "detector region (detector.roi): x 0..1280, y 0..720 px (1280x720, 100 % of the 1280x720 frame"
    assert sim in capsys.readouterr().out
