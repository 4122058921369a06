"""Latency profiles: validation with clear errors, seeded sampling, overrides, the shipped profiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sorter.clock import ModelledClock
from sorter.errors import ConfigError
from sorter.runtime.charging import MeasuredCharge, ModelledCharge
from sorter.runtime.latency_profile import PROFILES_DIR, STAGES, StageSampler, load_profile, parse_profile, rate_warning
from sorter.runtime.stats import LatencyRecorder

PROFILE = {"name": "t", "stages": {"detect": {"p50_ms": 10.0, "p99_ms": 20.0}, "track": {"p50_ms": 1.0, "p99_ms": 1.0}}}


def test_sampler_is_seeded_and_follows_the_percentiles() -> None:
    prof = parse_profile(PROFILE, "t.yaml")
    a, b, c = StageSampler(prof, 1), StageSampler(prof, 1), StageSampler(prof, 2)
    da = [a.sample_ns("detect") for _ in range(20_000)]
    assert da == [b.sample_ns("detect") for _ in range(20_000)]
    assert da[:50] != [c.sample_ns("detect") for _ in range(50)]
    ms = np.asarray(da) / 1e6
    assert np.percentile(ms, 50) == pytest.approx(10.0, rel=0.03)
    assert np.percentile(ms, 99) == pytest.approx(20.0, rel=0.08)
    assert a.sample_ns("track") == 1_000_000  # no spread: always its median
    assert a.sample_ns("plan") == 0  # a stage the profile does not model costs nothing


def test_empirical_samples_are_drawn_from() -> None:
    prof = parse_profile({"stages": {"detect": {"samples_ms": [5.0, 7.0]}}}, "e.yaml")
    assert prof.stages["detect"].p50_ms == 6.0 and prof.name == "e"
    s = StageSampler(prof, 3)
    assert {s.sample_ns("detect") for _ in range(100)} == {5_000_000, 7_000_000}


def test_override_keeps_the_spread() -> None:
    prof = parse_profile(PROFILE, "t.yaml").with_overrides({"detect": 33.0, "plan": 2.0})
    assert prof.stages["detect"].p50_ms == 33.0 and prof.stages["detect"].p99_ms == pytest.approx(66.0)
    assert prof.stages["plan"].p99_ms == 2.0
    assert "detect 33 ms" in prof.description
    assert prof.slowest_stage() == ("detect", 33.0) and prof.p50_total_ms() == pytest.approx(36.0)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([1, 2], "mapping"),
        ({"stages": {}}, "'stages'"),
        ({"stages": {"dteect": {"p50_ms": 1}}}, "unknown stage 'dteect'"),
        ({"stages": {"detect": {"p50_ms": -1}}}, "stages.detect.p50_ms"),
        ({"stages": {"detect": {"p50_ms": 5, "p99_ms": 2}}}, "p99 must be >= p50"),
        ({"stages": {"detect": {"samples_ms": []}}}, "samples_ms"),
        ({"stages": {"detect": {"p50_ms": 1}}, "extra": 1}, "unknown key"),
    ],
)
def test_bad_profiles_are_refused_with_the_key(data: object, words: str) -> None:
    with pytest.raises(ConfigError, match=r"bad\.yaml") as e:
        parse_profile(data, "bad.yaml")
    assert words in str(e.value)


def test_profiles_load_by_name_or_path(tmp_path: Path) -> None:
    for name in ("cpu-2core", "edge-gpu"):
        prof = load_profile(name, PROFILES_DIR)
        assert prof.name == name and set(prof.stages) <= set(STAGES) and "detect" in prof.stages
    assert load_profile("edge-gpu", PROFILES_DIR).source == "modelled"
    f = tmp_path / "mine.json"
    f.write_text('{"stages": {"detect": {"p50_ms": 3, "p99_ms": 4}}}')
    assert load_profile(str(f), PROFILES_DIR).stages["detect"].p99_ms == 4.0
    with pytest.raises(ConfigError, match="cpu-2core") as e:
        load_profile("nope", PROFILES_DIR)
    assert "--write-profile" in str(e.value)
    (tmp_path / "broken.yaml").write_text("stages: [")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        load_profile(str(tmp_path / "broken.yaml"), PROFILES_DIR)


def test_modelled_charge_moves_the_clock_by_the_draw_only() -> None:
    prof = parse_profile(PROFILE, "t.yaml")
    clock, measured = ModelledClock(), LatencyRecorder()
    charge = ModelledCharge(StageSampler(prof, 1), clock, measured)
    clock.begin_cycle(1_000)
    booked = charge.charge("track", 123_456_789)  # what the machine took is kept apart, never charged
    assert booked == 1_000_000 and clock.end_cycle() == 1_001_000
    assert measured.last_ms("track") == pytest.approx(123.456789)
    clock.begin_cycle(0)  # never backwards
    assert clock.now_ns() == 1_001_000
    assert MeasuredCharge().charge("detect", 42) == 42


def test_rate_warning_says_what_cannot_be_held_and_the_fix() -> None:
    prof = parse_profile(PROFILE, "t.yaml")  # 11 ms per frame
    assert rate_warning(prof, 60.0) is None
    w = rate_warning(prof, 120.0) or ""
    assert "11.0 ms per frame (detect 10.0 ms p50)" in w and "8.3 ms budget of 120 fps" in w
    assert "lower camera.fps to 91" in w and "degraded: overloaded" in w
