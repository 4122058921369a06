"""Calibration files: versions and history, validation, refusal, age warning, loading the camera model."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sorter.calib_store import (
    CalibrationStore,
    load_calibration,
    load_camera_model,
    make_section,
    validate_calibration,
    write_section_file,
)
from sorter.errors import CalibrationError
from sorter.geometry import CameraModel

T0 = datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC)
CAM = CameraModel.looking_down(1280, 720, 60.0, 1100.0, 600.0, dist=(-0.04, 0.01, 0.0, 0.0, 0.0))


def _lens(cam: CameraModel = CAM) -> dict[str, Any]:
    return {
        "width_px": cam.width_px,
        "height_px": cam.height_px,
        "fx": cam.fx,
        "fy": cam.fy,
        "cx": cam.cx,
        "cy": cam.cy,
        "dist": list(cam.dist),
    }


def _intrinsics(**over: Any) -> dict[str, Any]:
    return {**_lens(), "rms_px": 0.2, "passed": True, "problems": [], **over}


def _belt(cam: CameraModel = CAM, **over: Any) -> dict[str, Any]:
    return {
        **_lens(cam),
        "rvec": list(cam.rvec),
        "tvec_mm": list(cam.tvec_mm),
        "rms_mm": 0.3,
        "passed": True,
        "problems": [],
        **over,
    }


def test_each_step_is_a_new_version_and_history_is_kept(tmp_path: Path) -> None:
    store = CalibrationStore(tmp_path, "line-1")
    p1 = store.add("intrinsics", _intrinsics(), T0)
    v1_text = p1.read_text()
    p2 = store.add("belt", _belt(), T0 + timedelta(minutes=5))
    p3 = store.add("encoder", {"mm_per_count": 0.1, "passed": True}, T0 + timedelta(minutes=9))
    assert [p.name for p in store.versions()] == [p1.name, p2.name, p3.name]
    assert p1.name.startswith("v0001_20250301T100000Z")
    first = yaml.safe_load(p1.read_text())
    assert set(first) >= {"format", "machine", "version", "created_utc", "intrinsics"} and "belt" not in first
    latest = load_calibration(tmp_path / "line-1")
    assert latest.version == 3 and set(latest.sections) == {"intrinsics", "belt", "encoder"}
    assert latest.previous == p2.name
    assert latest.sections["intrinsics"]["version"] == 1 and latest.sections["belt"]["version"] == 2
    assert p1.read_text() == v1_text  # never rewritten


def test_a_failed_step_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    store = CalibrationStore(tmp_path, "line-1")
    with pytest.raises(CalibrationError, match=r"nothing written.*did not pass.*RMS too high"):
        store.add("intrinsics", _intrinsics(passed=False, problems=["RMS too high"]), T0)
    with pytest.raises(CalibrationError, match="principal point"):
        store.add("intrinsics", _intrinsics(cx=5000.0), T0)
    assert store.versions() == []
    assert not any(tmp_path.rglob("*.yaml"))


def test_camera_model_loads_from_the_machine_directory_and_matches(tmp_path: Path) -> None:
    store = CalibrationStore(tmp_path, "line-1")
    store.add("intrinsics", _intrinsics(), T0)
    store.add("belt", _belt(), T0)
    cam = load_camera_model(str(tmp_path / "line-1"), 1280, 720, now_utc=T0)
    px = np.array([[10.0, 20.0], [640.0, 360.0], [1200.0, 700.0]])
    assert np.allclose(cam.pixel_to_belt(px), CAM.pixel_to_belt(px))


def test_refusals_name_the_fix(tmp_path: Path) -> None:
    store = CalibrationStore(tmp_path, "line-1")
    store.add("intrinsics", _intrinsics(), T0)
    with pytest.raises(CalibrationError, match="sorter calibrate belt"):
        load_camera_model(str(store.dir), 1280, 720, now_utc=T0)
    store.add("belt", _belt(), T0)
    with pytest.raises(CalibrationError, match=r"made at 1280x720.*1920x1080"):
        load_camera_model(str(store.dir), 1920, 1080, now_utc=T0)
    other = CameraModel.looking_down(1280, 720, 58.0, 1100.0, 600.0)
    store.add("intrinsics", {**_intrinsics(), **_lens(other)}, T0 + timedelta(days=1))
    problems = validate_calibration(load_calibration(store.dir))
    assert any("other intrinsics" in p for p in problems)
    with pytest.raises(CalibrationError, match="repeat 'sorter calibrate belt'"):
        load_camera_model(str(store.dir), 1280, 720, now_utc=T0)


def test_old_calibration_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CalibrationStore(tmp_path, "line-1")
    store.add("belt", _belt(), T0)
    with caplog.at_level(logging.WARNING, logger="sorter.calib_store"):
        load_camera_model(str(store.dir), 1280, 720, max_age_days=30, now_utc=T0 + timedelta(days=29))
        assert not caplog.records
        load_camera_model(str(store.dir), 1280, 720, max_age_days=30, now_utc=T0 + timedelta(days=45))
    assert len(caplog.records) == 1 and "45 days old" in caplog.records[0].getMessage()


def test_standalone_file_keeps_the_previous_one(tmp_path: Path) -> None:
    out = tmp_path / "belt.yaml"
    write_section_file(out, make_section("belt", _belt(), T0))
    write_section_file(out, make_section("belt", _belt(rms_mm=0.2), T0 + timedelta(hours=1)))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["belt.20250301T100000Z.yaml", "belt.yaml"]
    assert yaml.safe_load(out.read_text())["rms_mm"] == 0.2
    assert load_camera_model(str(out), 1280, 720, now_utc=T0).fx == pytest.approx(CAM.fx)


def test_garbage_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("camera: [1, 2\n")
    with pytest.raises(CalibrationError, match="not valid YAML"):
        load_calibration(bad)
    bad.write_text("fx: 3\n")
    with pytest.raises(CalibrationError, match="not a calibration file"):
        load_calibration(bad)
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration(tmp_path / "missing.yaml")
    with pytest.raises(CalibrationError, match="machine name"):
        CalibrationStore(tmp_path, "../etc")


def test_refusal_is_also_a_config_error_naming_the_key(tmp_path: Path) -> None:
    from sorter.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        load_camera_model(str(tmp_path / "nowhere"), 1280, 720)
    assert isinstance(e.value, CalibrationError)
    assert e.value.problems[0].startswith("camera.calibration_file = ")
