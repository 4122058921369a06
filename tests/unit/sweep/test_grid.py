"""The sweep file: ranges, products, zip groups, ranking, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sorter.errors import ConfigError
from sorter.sweep.grid import RankMetric, expand_values, load_grid, parse_grid


def _grid(doc: dict[str, Any]) -> Any:
    return parse_grid(doc, Path("sweep.yaml"))


def test_ranges_include_stop_and_drop_float_noise() -> None:
    assert expand_values("k", {"start": 0.1, "stop": 0.4, "step": 0.1}) == [0.1, 0.2, 0.3, 0.4]
    assert expand_values("k", {"start": 0, "stop": 6, "num": 4}) == [0, 2, 4, 6]
    assert expand_values("k", {"start": 100, "stop": 40, "step": -20}) == [100, 80, 60, 40]
    assert expand_values("k", ["a", "b"]) == ["a", "b"]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ([], "empty"),
        ({"start": 0, "stop": 1}, "one of step or num"),
        ({"start": 0, "stop": 1, "step": -0.1}, "right sign"),
        ({"start": 0, "stop": 1, "num": 0}, "num = 0"),
        ("0.3", "expected a list"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(spec: Any, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as e:
        expand_values("sweep.yaml: grid.detector.min_score", spec)
    assert "detector.min_score" in str(e.value)


def test_product_first_axis_slowest_and_zip_groups_move_together() -> None:
    g = _grid({
        "grid": {"detector.min_score": [0.3, 0.5], "tracker.gate_mm": {"start": 40, "stop": 60, "step": 20}},
        "zip": [{"airjet.valves.margin_mm": [5, 10], "airjet.valves.lateral_margin_mm": [2, 4]}],
        "rank": ["recovery", {"metric": "fire_position_error_mm.p99"}, {"metric": "frames", "goal": "max"}],
    })
    assert len(g.settings) == 2 * 2 * 2
    assert [s.id for s in g.settings[:2]] == ["s000", "s001"]
    assert g.settings[0].values == {"detector.min_score": 0.3, "tracker.gate_mm": 40,
                                    "airjet.valves.margin_mm": 5, "airjet.valves.lateral_margin_mm": 2}
    assert g.settings[1].values["airjet.valves.margin_mm"] == 10 and g.settings[1].values["airjet.valves.lateral_margin_mm"] == 4
    assert g.settings[4].values["detector.min_score"] == 0.5
    assert g.settings[3].overrides() == ["detector.min_score=0.3", "tracker.gate_mm=60", "airjet.valves.margin_mm=10",
                                         "airjet.valves.lateral_margin_mm=4"]
    assert g.rank == (RankMetric("recovery", "max"), RankMetric("fire_position_error_mm.p99", "min"), RankMetric("frames", "max"))


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"grid": {"sim.density_per_m2": [1, 2]}}, "simulated world"),
        ({"grid": {}}, "nothing to sweep"),
        ({"grid": {"a.b": [1]}, "zip": [{"a.b": [1]}]}, "swept twice"),
        ({"zip": [{"a.b": [1, 2], "a.c": [1]}]}, "as many values"),
        ({"grid": {"a.b": [1]}, "rank": ["frames"]}, "no known goal"),
        ({"grid": {"a.b": [1]}, "rnak": ["recovery"]}, "unknown key"),
        ({"grid": {"a.b": [1]}, "base": {"set": {"a.b": 2}}}, "both set in base.set and swept"),
        ({"grid": {"a..b": [1]}}, "not a config key"),
    ],
)
def test_bad_sweep_files_are_refused_with_the_reason(doc: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        _grid(doc)


def test_files_resolve_configs_beside_them(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text("line: {name: site}\n")
    f = tmp_path / "sweep.yaml"
    f.write_text("base: {config: [sim-airjet.yaml, site.yaml]}\ngrid: {detector.min_score: [0.3]}\n")
    g = load_grid(f)
    assert g.base_configs == ("sim-airjet.yaml", str(tmp_path / "site.yaml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_grid(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("grid: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_grid(tmp_path / "bad.yaml")
