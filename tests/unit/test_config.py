"""Config schema, error messages and physics checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sorter.cli import main as cli_main
from sorter.config import CONFIG_DIR, load_config
from sorter.errors import ConfigError
from sorter.runtime.preflight import load_line_config


def _problems(*overrides: str, files: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_line_config(files, overrides)
    return ei.value.problems


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
def test_every_shipped_config_loads(name: str) -> None:
    cfg = load_config([CONFIG_DIR / name])
    assert cfg.line.name


def test_default_is_sim_airjet() -> None:
    cfg = load_config()
    assert cfg.line.mode == "airjet"
    assert cfg.camera.type == "sim"
    assert (cfg.camera.width_px, cfg.camera.height_px, cfg.camera.fps) == (1280, 720, 60.0)


def test_unknown_key_names_path_and_fix() -> None:
    (p,) = _problems("belt.widht_mm=1000")
    assert "belt.widht_mm" in p and "unknown key" in p and "reference.yaml" in p


def test_bad_value_names_key_value_and_expectation() -> None:
    (p,) = _problems("belt.width_mm=-5")
    assert "belt.width_mm" in p and "-5" in p and "greater than 0" in p


def test_wrong_type_is_explained() -> None:
    (p,) = _problems("camera.fps=fast")
    assert "camera.fps" in p and "'fast'" in p and "number" in p


def test_unknown_target_class_lists_known_ones() -> None:
    (p,) = _problems("policy.targets=[pet_bottle, glass_jar]")
    assert "glass_jar" in p and "alu_can" in p and "film" in p


def test_eject_line_inside_view_is_refused() -> None:
    (p,) = _problems("airjet.y_eject_mm=100")
    assert "airjet.y_eject_mm" in p and "downstream" in p


def test_valve_bank_wider_than_belt_is_refused() -> None:
    (p,) = _problems("airjet.valves.count=80")
    assert "wider than the belt" in p and "80 valves" in p


def test_camera_rate_too_low_is_refused_with_needed_rate() -> None:
    (p,) = _problems("camera.fps=8")
    assert "camera.fps" in p and "at least 3" in p and ">= " in p


def test_robot_window_inside_view_is_refused() -> None:
    problems = _problems("robot.window_y_start_mm=0", files=["sim-robot.yaml"])
    assert any("robot.window_y_start_mm" in p for p in problems)


def test_several_problems_reported_together() -> None:
    problems = _problems("airjet.y_eject_mm=100", "airjet.valves.count=80")
    assert len(problems) == 2


def test_missing_file_says_so() -> None:
    (p,) = _problems(files=["does-not-exist.yaml"])
    assert "does not exist" in p


def test_overrides_layer_over_files(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("sim:\n  density_per_m2: 5.0\n")
    cfg = load_config(["sim-airjet.yaml", site], ["sim.seed=7"])
    assert cfg.sim.density_per_m2 == 5.0 and cfg.sim.seed == 7
    assert cfg.policy.targets == ("pet_bottle", "hdpe_container")


def test_check_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["check", "--config", "sim-airjet.yaml"]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("airjet:\n  y_eject_mm: 0\nbelt:\n  colour: red\n")
    assert cli_main(["check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "belt.colour" in err


def _flatten(d: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and k not in ("values", "class_mix"):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_reference_config_documents_every_key_with_its_default() -> None:
    import yaml

    from sorter.config import Config

    ref = yaml.safe_load((CONFIG_DIR / "reference.yaml").read_text())
    defaults = Config().model_dump(mode="json")
    ref_flat, def_flat = _flatten(ref), _flatten(defaults)
    assert set(ref_flat) == set(def_flat), f"missing {set(def_flat) - set(ref_flat)}, extra {set(ref_flat) - set(def_flat)}"
    for key, value in def_flat.items():
        assert ref_flat[key] == value or (isinstance(value, list) and list(ref_flat[key]) == value), key
