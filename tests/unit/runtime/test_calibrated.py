"""The calibration is the source of truth at run time: the values a line runs on come from the calibration file the
config names, a config key set against it is reported as an override, emulator/simulator sections are refused for a
real line, and ``sorter calibrate history`` judges a store exactly as ``sorter check`` does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sorter.calib_store import CalibrationStore
from sorter.cli import main as cli_main
from sorter.config import load_config
from sorter.errors import ConfigError
from sorter.geometry import CameraModel
from sorter.runtime.calibrated import applied_of
from sorter.runtime.params import airjet_params
from sorter.runtime.plant import camera_model
from sorter.runtime.preflight import load_line_config
from sorter.sim.mount import sim_camera_model

NOW = datetime.now(UTC)


def _lens(cam: CameraModel) -> dict[str, Any]:
    return {
        "width_px": cam.width_px,
        "height_px": cam.height_px,
        "fx": cam.fx,
        "fy": cam.fy,
        "cx": cam.cx,
        "cy": cam.cy,
        "dist": list(cam.dist),
    }


def _store(
    root: Path,
    *,
    kinds: tuple[str, ...] = ("intrinsics", "belt", "encoder", "valves"),
    provenance: str = "measured",
    valves_provenance: str | None = None,
    cam: CameraModel | None = None,
    made: datetime = NOW,
) -> Path:
    """A machine's calibration store with the simulator's true mount, 9.998 counts/mm and valves at about 6 ms."""
    cam = cam or sim_camera_model(load_config())
    store = CalibrationStore(root, "line-1")
    bodies: dict[str, dict[str, Any]] = {
        "intrinsics": {**_lens(cam), "rms_px": 0.2},
        "belt": {**_lens(cam), "rvec": list(cam.rvec), "tvec_mm": list(cam.tvec_mm), "rms_mm": 0.3},
        "encoder": {"mm_per_count": 1.0 / 9.998},
        "valves": {
            "mean_latency_ms": 6.0,
            "valves": [{"valve": 0, "latency_ms": 6.2}, {"valve": 1, "latency_ms": 5.8}],
        },
    }
    for i, kind in enumerate(kinds):
        prov = valves_provenance if (kind == "valves" and valves_provenance) else provenance
        store.add(kind, {**bodies[kind], "passed": True, "problems": [], "provenance": prov}, made + timedelta(seconds=i))
    return root / "line-1"


def test_the_line_runs_on_the_calibrated_values(tmp_path: Path) -> None:
    store = _store(tmp_path)
    cfg = load_line_config(None, [f"camera.calibration_file={store}"])
    assert cfg.belt.encoder_counts_per_mm == pytest.approx(9.998)
    assert cfg.airjet.valves.latency_ms == pytest.approx(6.0)
    assert cfg.airjet.valves.latency_per_valve_ms == {0: 6.2, 1: 5.8}
    params = airjet_params(cfg, camera_model(cfg))
    assert params.valve_latency_ms[:3] == (6.2, 5.8, 6.0)  # measured valves their own, the others the mean
    applied = applied_of(cfg)
    assert applied is not None and applied.overrides == ()
    assert "calibration v4 (measured" in applied.used["airjet.valves.latency_ms"][1]


def test_config_keys_set_against_the_calibration_are_reported_as_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(tmp_path)
    args = ["--set", f"camera.calibration_file={store}"]
    args += ["--set", "airjet.valves.latency_ms=10", "--set", "belt.encoder_counts_per_mm=12"]
    assert cli_main(["check", "--config-only", *args]) == 0
    out = capsys.readouterr().out
    assert "OVERRIDE airjet.valves.latency_ms: calibration says 6, config says 10" in out
    assert "OVERRIDE belt.encoder_counts_per_mm: calibration says 9.998, config says 12" in out
    # without the overrides the calibration's values are shown with their source
    assert cli_main(["check", "--config-only", "--set", f"camera.calibration_file={store}"]) == 0
    out = capsys.readouterr().out
    assert "OVERRIDE" not in out
    assert "belt.encoder_counts_per_mm: 9.998  <- calibration v3 (measured" in out


def test_emulator_timing_is_refused_for_a_real_line_and_used_by_the_simulated_one(tmp_path: Path) -> None:
    store = _store(tmp_path, valves_provenance="emulator")
    sim = load_line_config("sim-airjet-serial.yaml", [f"camera.calibration_file={store}"])
    assert sim.airjet.valves.latency_ms == pytest.approx(6.0)
    real_link = [f"camera.calibration_file={store}", "actuator.emulator=false"]
    with pytest.raises(ConfigError) as e:
        load_line_config("sim-airjet-serial.yaml", real_link)
    text = str(e.value)
    assert "valves calibration came from the emulator (version 4), not from this line" in text
    assert "run 'sorter calibrate timing' on the line" in text


def test_history_and_check_agree_on_a_store_without_belt_pose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(tmp_path, kinds=("intrinsics", "encoder"))
    assert cli_main(["calibrate", "history", "--store", str(tmp_path), "--machine", "line-1"]) == 1
    history = capsys.readouterr().out
    assert "REFUSED: it holds intrinsics, encoder but no belt pose" in history
    video = ["--set", "camera.type=video", "--set", f"camera.uri={tmp_path / 'clip.avi'}"]
    assert cli_main(["check", "--config-only", *video, "--set", f"camera.calibration_file={store}"]) == 2
    err = capsys.readouterr().err
    assert "it holds intrinsics, encoder but no belt pose" in err
    # a complete measured store: both say so
    full = _store(tmp_path / "full")
    assert cli_main(["calibrate", "history", "--store", str(tmp_path / "full"), "--machine", "line-1"]) == 0
    assert "valid" in capsys.readouterr().out
    assert cli_main(["check", "--config-only", *video, "--set", f"camera.calibration_file={full}"]) == 0


def test_calibrated_image_size_is_taken_and_a_different_configured_size_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    cfg = load_line_config(None, [f"camera.calibration_file={store}"])
    assert (cfg.camera.width_px, cfg.camera.height_px) == (1280, 720)
    with pytest.raises(ConfigError) as e:
        load_line_config(None, [f"camera.calibration_file={store}", "camera.width_px=640", "camera.height_px=480"])
    assert "made at 1280x720 px but the camera is configured for 640x480" in str(e.value)


def test_old_calibration_is_named_in_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(tmp_path, made=NOW - timedelta(days=400))
    assert cli_main(["check", "--config-only", "--set", f"camera.calibration_file={store}"]) == 0
    out = capsys.readouterr().out
    assert "WARNING belt calibration is 400 days old (more than 180)" in out


def test_relative_calibration_path_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    _store(site / "calibrations")
    cfg_file = site / "line.yaml"
    cfg_file.write_text(
        "camera:\n  type: sim\n  calibration_file: calibrations/line-1\nanalytics:\n  store: rel-events.db\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)  # anywhere but the config's folder (a service starts in /)
    cfg = load_line_config([cfg_file])
    assert cfg.camera.calibration_file == str(site / "calibrations" / "line-1")
    assert cfg.analytics.store == str(site / "rel-events.db")
    assert cfg.belt.encoder_counts_per_mm == pytest.approx(9.998)
    # on the command line a relative path means the current folder
    cfg = load_line_config([cfg_file], ["analytics.store=here.db"])
    assert cfg.analytics.store == "here.db"
