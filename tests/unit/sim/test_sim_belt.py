"""True belt motion of the simulator: odometer = integral of speed, inverse, steps, encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sorter.geometry import CameraModel
from sorter.sim.belt import BeltProfile
from sorter.sim.config import SimConfig, SpeedStep
from sorter.sim.world import SimWorld


def _numeric_s(profile: BeltProfile, t_end_s: float, n: int = 200_001) -> float:
    t = np.linspace(0.0, t_end_s, n)
    v = np.array([profile.speed_mm_s(float(x)) for x in t])
    return float(np.sum((v[1:] + v[:-1]) * 0.5 * np.diff(t)))


def test_odometer_is_the_integral_of_speed_with_drift_and_steps() -> None:
    belt = BeltProfile(2500.0, drift_fraction=0.05, drift_period_s=3.0, drift_phase_rad=0.7, steps=[(1.0, 1500.0), (2.5, 3200.0)])
    for t_end in (0.3, 1.02, 1.7, 2.53, 4.0):
        assert belt.s_mm(t_end) == pytest.approx(_numeric_s(belt, t_end, 100_001), abs=1e-3)


def test_speed_step_ramps_to_the_new_speed_in_about_50_ms() -> None:
    belt = BeltProfile(2000.0, steps=[(1.0, 1000.0)])
    assert belt.speed_mm_s(0.999) == pytest.approx(2000.0)
    assert 1000.0 < belt.speed_mm_s(1.025) < 2000.0
    assert belt.speed_mm_s(1.051) == pytest.approx(1000.0)
    # travel over the step: 2000 mm/s until 1.0 s, a linear ramp, then 1000 mm/s
    expected = 2000.0 * 1.0 + 0.05 * (2000.0 + 1000.0) / 2.0 + 1000.0 * (2.0 - 1.05)
    assert belt.s_mm(2.0) == pytest.approx(expected, rel=1e-9)


def test_odometer_is_monotonic_and_inverse_is_exact() -> None:
    belt = BeltProfile(1800.0, drift_fraction=0.3, drift_period_s=0.7, drift_phase_rad=2.0, steps=[(0.5, 900.0), (0.52, 2600.0)])
    t = np.linspace(-0.5, 5.0, 4001)
    s = np.array([belt.s_mm(float(x)) for x in t])
    assert np.all(np.diff(s) > 0)
    for target in (-300.0, 0.0, 1.0, 800.0, 950.0, 5000.0, 12345.6):
        t_hit = belt.t_at_s(target)
        assert belt.s_mm(t_hit) == pytest.approx(target, abs=1e-6)


def test_bad_profiles_are_refused() -> None:
    with pytest.raises(ValueError, match="speed"):
        BeltProfile(0.0)
    with pytest.raises(ValueError, match="drift"):
        BeltProfile(1000.0, drift_fraction=1.5)


def _world(sim: SimConfig, t0_ns: int = 0) -> SimWorld:
    cam = CameraModel.looking_down(640, 360, 60.0, 1100.0, 600.0)
    return SimWorld(sim, belt_width_mm=1200.0, nominal_speed_mm_s=2500.0, encoder_counts_per_mm=10.0, camera=cam, t0_ns=t0_ns)


def test_world_odometry_uses_config_speed_and_t0() -> None:
    t0 = 5_000_000_000
    w = _world(SimConfig(belt_speed_mm_s=2000.0, speed_drift_fraction=0.0, density_per_m2=0.0), t0_ns=t0)
    assert w.odometer_mm(t0) == 0.0
    assert w.odometer_mm(t0 + 1_000_000_000) == pytest.approx(2000.0)
    assert w.speed_mm_s(t0 + 123) == pytest.approx(2000.0)
    assert w.encoder_count(t0 + 1_000_000) == math.floor(2.0 * 10.0)
    assert w.t_ns_at_odometer(1000.0) == t0 + 500_000_000


def test_world_speed_steps_from_config_and_nominal_speed_fallback() -> None:
    sim = SimConfig(speed_drift_fraction=0.0, density_per_m2=0.0, speed_steps=(SpeedStep(t_s=1.0, speed_mm_s=1000.0),))
    w = _world(sim)
    assert w.speed_mm_s(500_000_000) == pytest.approx(2500.0)  # nominal speed, no sim.belt_speed_mm_s
    assert w.speed_mm_s(2_000_000_000) == pytest.approx(1000.0)


def test_capture_reports_the_encoder_odometer() -> None:
    w = _world(SimConfig(density_per_m2=0.0))
    t = 123_456_789
    f = w.capture(t, 7, render=False)
    assert f.s_capture_mm == w.encoder_count(t) / 10.0
    assert 0.0 <= w.odometer_mm(t) - f.s_capture_mm < 0.1
    assert f.t_capture_ns == t and f.frame_index == 7
