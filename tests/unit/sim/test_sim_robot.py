"""Robot physics: picks succeed within tolerance, fail outside it or while busy; late/out-of-reach refused."""

from __future__ import annotations

import pytest

from sorter.entities import class_id
from sorter.geometry import CameraModel
from sorter.sim.config import SimConfig
from sorter.sim.robot import RobotModel
from sorter.sim.world import SimWorld

SPEED = 1500.0


def _setup(jitter_mm: float = 0.0, tolerance_mm: float = 15.0, cycle_ms: float = 600.0) -> tuple[SimWorld, RobotModel]:
    sim = SimConfig(density_per_m2=0.0, speed_drift_fraction=0.0, belt_speed_mm_s=SPEED)
    cam = CameraModel.looking_down(640, 360, 60.0, 1100.0, 600.0)
    w = SimWorld(sim, belt_width_mm=1200.0, nominal_speed_mm_s=SPEED, encoder_counts_per_mm=10.0, camera=cam)
    robot = w.add_robot(900.0, 1700.0, 50.0, 1150.0, jitter_mm=jitter_mm, tolerance_mm=tolerance_mm, cycle_ms=cycle_ms)
    return w, robot


def _u(w: SimWorld, oid: int) -> tuple[float, float]:
    st = {s.object_id: s for s in w.object_states()}[oid]
    return st.x_mm, st.u_mm


def test_pick_on_the_object_succeeds_and_removes_it() -> None:
    w, robot = _setup()
    score = w.scoreboard(frozenset({class_id("pet_bottle")}))
    oid = w.place_object("pet_bottle", 400.0, w.view_mm[2] - 300.0)
    x, u = _u(w, oid)
    s_pick = 1200.0 - u  # pick when the object is at y = 1200
    assert robot.schedule_pick(1, x, u, s_pick) == "accepted"
    w.advance_to(w.t_ns_at_odometer(s_pick + 1000.0))
    (rec,) = robot.executed
    assert rec.success and not rec.busy and rec.object_id == oid
    assert rec.error_mm is not None and rec.error_mm < 1e-6
    assert rec.s_mm == pytest.approx(s_pick, abs=1e-3)
    assert [(f.object_id, f.fate) for f in w.fates] == [(oid, "picked")]
    assert score.summary()["targets_picked"] == 1 and score.recovery == 1.0


def test_pick_outside_the_tolerance_misses() -> None:
    w, robot = _setup(tolerance_mm=15.0)
    oid = w.place_object("alu_can", 400.0, 0.0)
    x, u = _u(w, oid)
    assert robot.schedule_pick(1, x + 30.0, u, 1200.0 - u) == "accepted"
    w.advance_to(w.t_ns_at_odometer(3000.0))
    (rec,) = robot.executed
    assert not rec.success and rec.object_id == oid
    assert rec.error_mm == pytest.approx(30.0, abs=1e-6)
    assert [(f.object_id, f.fate) for f in w.fates] == [(oid, "passed")]


def test_gripper_jitter_is_applied() -> None:
    w, robot = _setup(jitter_mm=4.0, tolerance_mm=100.0, cycle_ms=1.0)
    errors = []
    for k in range(40):
        oid = w.place_object("cardboard", 600.0, -200.0 * k, seed=k)
        x, u = _u(w, oid)
        robot.schedule_pick(k, x, u, 1200.0 - u)
    w.advance_to(w.t_ns_at_odometer(20000.0))
    for rec in robot.executed:
        assert rec.success and rec.error_mm is not None
        errors.append(rec.error_mm)
    assert len(errors) == 40
    # 2-D gaussian with sigma 4 per axis: mean radius 4 * sqrt(pi / 2) ~ 5.0
    assert sum(errors) / len(errors) == pytest.approx(5.0, rel=0.3)


def test_a_pick_while_busy_fails() -> None:
    w, robot = _setup(cycle_ms=600.0)
    a = w.place_object("alu_can", 300.0, 0.0)
    b = w.place_object("alu_can", 800.0, -150.0)  # reaches the pick point 100 ms later
    xa, ua = _u(w, a)
    xb, ub = _u(w, b)
    assert robot.schedule_pick(1, xa, ua, 1200.0 - ua) == "accepted"
    assert robot.schedule_pick(2, xb, ub, 1200.0 - ub) == "accepted"
    w.advance_to(w.t_ns_at_odometer(4000.0))
    first, second = robot.executed
    assert first.success and not first.busy
    assert second.busy and not second.success
    assert robot.stats()["busy"] == 1
    assert {f.object_id: f.fate for f in w.fates} == {a: "picked", b: "passed"}


def test_late_and_out_of_reach_picks_are_refused() -> None:
    w, robot = _setup()
    w.advance_to(200_000_000)
    s_now = w.odometer_mm(w.now_ns)
    assert robot.schedule_pick(1, 600.0, 1000.0 - s_now, s_now) == "late"
    assert robot.schedule_pick(2, 600.0, 800.0 - s_now - 100.0, s_now + 100.0) == "rejected"  # y = 800, before the window
    assert robot.schedule_pick(3, 600.0, 1800.0 - s_now - 100.0, s_now + 100.0) == "rejected"  # y = 1800, past it
    assert robot.schedule_pick(4, 20.0, 1000.0 - s_now - 100.0, s_now + 100.0) == "rejected"  # x out of reach
    assert robot.schedule_pick(5, 600.0, 1000.0 - s_now - 100.0, s_now + 100.0) == "accepted"
    assert robot.cancel(5) is True
    w.advance_to(w.t_ns_at_odometer(s_now + 2000.0))
    assert robot.executed == []
    st = robot.stats()
    assert (st["late"], st["rejected"], st["accepted"], st["cancelled"]) == (1, 3, 1, 1)


def test_empty_reach_window_is_an_error() -> None:
    sim = SimConfig(density_per_m2=0.0)
    cam = CameraModel.looking_down(640, 360, 60.0, 1100.0, 600.0)
    w = SimWorld(sim, belt_width_mm=1200.0, nominal_speed_mm_s=SPEED, encoder_counts_per_mm=10.0, camera=cam)
    with pytest.raises(ValueError, match="reach window"):
        w.add_robot(1700.0, 900.0, 50.0, 1150.0)
