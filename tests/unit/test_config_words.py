"""Configuration errors in words: the right source blamed, the nearest valid key offered, expected types explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from sorter.config import load_config
from sorter.config_words import nearest_keys
from sorter.errors import ConfigError


def _problems(files: list[Path] | None, *overrides: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(files, overrides)
    return e.value.problems


def test_misspelt_override_is_blamed_on_the_override_with_the_nearest_key() -> None:
    assert _problems(None, "sim.densty=2") == [
        "--set 'sim.densty=2': unknown key 'sim.densty' (value 2); did you mean 'sim.density_per_m2'? "
        "(every key: configs/reference.yaml)"
    ]


def test_misspelt_key_in_a_file_names_file_line_and_nearest_key(tmp_path: Path) -> None:
    f = tmp_path / "site.yaml"
    f.write_text("line:\n  name: a\nairjet:\n  valves:\n    latncy_ms: 4\n", encoding="utf-8")
    (p,) = _problems([f])
    assert p.startswith(f"config file '{f}' line 5: unknown key 'airjet.valves.latncy_ms'")
    assert "did you mean 'airjet.valves.latency_ms'" in p


def test_misspelt_section_offers_the_section() -> None:
    (p,) = _problems(None, "camra.fps=30")
    assert "did you mean 'camera'?" in p


def test_a_word_far_from_every_key_lists_the_valid_keys() -> None:
    (p,) = _problems(None, "belt.zzz=1")
    assert "valid keys of 'belt': encoder_counts_per_mm, max_speed_mm_s, nominal_speed_mm_s, speed_filter_ms, width_mm" in p


def test_targets_as_a_single_word_explains_the_list(tmp_path: Path) -> None:
    f = tmp_path / "site.yaml"
    f.write_text("policy:\n  targets: pet_bottle\n", encoding="utf-8")
    (p,) = _problems([f])
    assert p == (
        f"config file '{f}' line 2: 'policy.targets' = 'pet_bottle' is invalid: expected a list of classes, "
        "e.g. [pet_bottle] or [pet_bottle, alu_can]"
    )
    assert "valid tuple" not in p


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("belt.width_mm=wide", "'belt.width_mm' = 'wide' is invalid: expected a number, e.g. 2.5"),
        ("sim.render=maybe", "'sim.render' = 'maybe' is invalid: expected true or false"),
        ("airjet.valves.count=3.5", "expected a whole number (no decimals), e.g. 3"),
        ("belt.width_mm=-3", "expected a number greater than 0"),
        ("policy.touching_nontarget=blow", "expected one of"),
        ("sim.class_mix=[1, 2]", "expected a mapping of class to share, e.g. {pet_bottle: 2, film: 1}"),
        ("sim", "expected KEY.PATH=VALUE"),
        ("sim=3", "expected a section: indented lines 'key: value' under it"),
    ],
)
def test_expected_types_in_words(override: str, words: str) -> None:
    problems = _problems(None, override)
    assert any(words in p for p in problems), problems
    assert all("Input should be" not in p for p in problems)


def test_error_lines_blame_the_last_source_that_set_the_key(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("sim:\n  density_per_m2: 2\n", encoding="utf-8")
    b.write_text("line:\n  name: b\nsim:\n  density_per_m2: 99\n", encoding="utf-8")
    (p,) = _problems([a, b])
    assert p.startswith(f"config file '{b}' line 4: 'sim.density_per_m2' = 99")


def test_nearest_keys() -> None:
    keys = ["density_per_m2", "seed", "speed_steps", "slide_fraction"]
    assert nearest_keys("densty", keys)[0] == "density_per_m2"
    assert nearest_keys("sede", keys)[0] == "seed"
    assert nearest_keys("qqqq", keys) == []
