"""Valve latency and lateral offset fit: exact recovery, simulated pulses, and what stops it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sorter.calib.timing import PulseObservation, ValveGeometry, fit_timing
from sorter.calib.timing_rig import SimHitObserver, SimPulseRig, ValveTruth, run_test_pulses
from sorter.errors import CalibrationError
from sorter.sim.marker_sheet import BeltMotion

GEOM = ValveGeometry(count=16, pitch_mm=20.0, x_first_mm=100.0)


def _pulse(valve: int, latency_ms: float, speed: float, s_cmd: float, e_mm: float = 0.0, lag_mm: float = 0.0) -> PulseObservation:
    """Noise-free observation: the air arrives latency later, the line sits e_mm off."""
    s_fired = s_cmd + lag_mm
    s_air = s_fired + speed * latency_ms * 1e-3 + e_mm
    return PulseObservation(valve, s_cmd, s_fired, speed, s_cmd - s_air, GEOM.centre_x_mm(valve))


@settings(max_examples=40, deadline=None)
@given(st.floats(0.2, 20.0), st.floats(200.0, 5000.0), st.floats(0.0, 0.2))
def test_noise_free_pulses_give_the_latency_exactly(latency_ms: float, speed: float, lag_mm: float) -> None:
    obs = [_pulse(v, latency_ms, speed, 1000.0 * k + v, lag_mm=lag_mm) for k in range(3) for v in (0, 5)]
    fit = fit_timing(obs, GEOM)
    for t in fit.valves:
        assert t.latency_ms == pytest.approx(latency_ms, abs=1e-9)
        assert t.lateral_offset_mm == pytest.approx(0.0, abs=1e-9)
        assert t.controller_lag_ms == pytest.approx(lag_mm / speed * 1e3, abs=1e-9)
    assert fit.y_eject_offset_mm is None  # one speed: cannot be separated, and it says so
    assert any("one belt speed" in w for w in fit.warnings)


def test_two_speeds_separate_latency_from_an_ejection_line_error() -> None:
    obs = [_pulse(v, 4.0 + 0.1 * v, sp, 500.0 * k, e_mm=6.0) for k in range(4) for v in range(4) for sp in (1000.0, 2500.0)]
    fit = fit_timing(obs, GEOM)
    assert fit.y_eject_offset_mm == pytest.approx(6.0, abs=1e-6)
    for t in fit.valves:
        assert t.latency_ms == pytest.approx(4.0 + 0.1 * t.valve, abs=1e-6)
    assert any("ejection line appears" in w for w in fit.warnings)


def test_simulated_pulses_recover_the_true_valves() -> None:
    latency = tuple(2.5 + 0.3 * np.sin(np.arange(16)))
    offsets = tuple(np.linspace(-3.0, 3.0, 16))
    truth = ValveTruth(latency_ms=latency, jitter_ms=0.2, lateral_offset_mm=offsets, observation_sigma_mm=0.5)
    belt = BeltMotion(mean_speed_mm_s=2500.0, counts_per_mm=10.0, variation=0.02, period_s=7.0)
    rig = SimPulseRig(belt, 10.0, SimHitObserver(truth, GEOM, seed=4))
    obs, missed = run_test_pulses(rig, list(range(16)), repeats=8)
    assert len(obs) == 16 * 8 and not any(missed.values())
    fit = fit_timing(obs, GEOM)
    assert fit.passed, fit.problems
    for t in fit.valves:
        assert abs(t.latency_ms - latency[t.valve]) < 0.5
        assert abs(t.lateral_offset_mm - offsets[t.valve]) < 1.0
        assert 0.05 < t.jitter_ms < 0.6
    assert abs(fit.mean_latency_ms - float(np.mean(latency))) < 0.1


def test_dead_valve_and_wandering_air_fail_with_the_valve_named() -> None:
    truth = ValveTruth(latency_ms=3.0, lateral_offset_mm=tuple([0.0] * 15 + [12.0]), dead_valves=frozenset({3}))
    rig = SimPulseRig(BeltMotion(2000.0, 10.0), 10.0, SimHitObserver(truth, GEOM, seed=1))
    obs, missed = run_test_pulses(rig, list(range(16)), repeats=4)
    fit = fit_timing(obs, GEOM, missed=missed)
    assert not fit.passed
    assert any(p.startswith("valve 3: no air seen") for p in fit.problems)
    assert any(p.startswith("valve 15: air lands") for p in fit.problems)


def test_a_standing_belt_stops() -> None:
    with pytest.raises(CalibrationError, match="standing"):
        fit_timing([PulseObservation(0, 100.0, 100.0, 0.0, 0.0, GEOM.centre_x_mm(0))], GEOM)
    with pytest.raises(CalibrationError, match="no test pulse"):
        fit_timing([], GEOM)
