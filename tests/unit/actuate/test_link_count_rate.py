"""The count-jump bound both controller links get: belt top speed x link counts per mm x margin, from the config."""

from __future__ import annotations

import pytest

from sorter.actuate.links import COUNT_RATE_MARGIN, link_max_counts_per_s
from sorter.config import TOP_SPEED_FACTOR, load_config
from sorter.errors import ConfigError


def test_bound_from_the_nominal_speed_when_no_top_speed_is_set() -> None:
    cfg = load_config("sim-airjet-serial.yaml")  # 2500 mm/s nominal, 2560 counts/mm on the link
    assert cfg.belt.max_speed_mm_s is None
    assert cfg.belt.top_speed_mm_s() == pytest.approx(TOP_SPEED_FACTOR * 2500.0)
    assert link_max_counts_per_s(cfg) == pytest.approx(1.25 * 2500.0 * 2560 * 1.5)
    assert COUNT_RATE_MARGIN == 1.5


def test_bound_from_an_explicit_top_speed_and_the_belt_encoder() -> None:
    cfg = load_config(None, ["actuator.type=modbus", "belt.max_speed_mm_s=4000", "belt.encoder_counts_per_mm=20"])
    assert cfg.actuator.counts_per_mm is None  # the link counts in belt encoder counts
    assert link_max_counts_per_s(cfg) == pytest.approx(4000.0 * 20 * 1.5)
    assert link_max_counts_per_s(cfg, margin=1.0) == pytest.approx(4000.0 * 20)


def test_the_simulated_speed_steps_stay_under_the_default_bound() -> None:
    # the speed-step scenario: the belt really runs at 3.0 m/s (plus drift) while the config says 2.5 m/s
    cfg = load_config("sim-airjet-modbus.yaml", ["sim.speed_steps=[{t_s: 6, speed_mm_s: 3000}]"])
    fastest_counts_per_s = cfg.sim.max_speed_mm_s(cfg.belt.nominal_speed_mm_s) * 2560
    assert fastest_counts_per_s < link_max_counts_per_s(cfg, margin=1.0) < link_max_counts_per_s(cfg)


def test_a_top_speed_below_the_nominal_one_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, ["belt.max_speed_mm_s=2000"])
    msg = str(e.value)
    assert "belt.max_speed_mm_s=2000" in msg and "max_speed_mm_s (2000) at least nominal_speed_mm_s (2500)" in msg
    assert "top speed" in msg


def test_a_margin_under_one_is_refused() -> None:
    with pytest.raises(ValueError, match="margin of at least 1"):
        link_max_counts_per_s(load_config(None), margin=0.9)
