"""Valve-bank physics: position-stamped pulses, latency, air-curtain coverage, late/reject, cancel, watchdog."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sorter.entities import class_id
from sorter.geometry import CameraModel
from sorter.sim.config import SimConfig
from sorter.sim.ejector import ValveBankModel
from sorter.sim.records import PulseRecord
from sorter.sim.world import SimWorld

SPEED = 2000.0
Y_EJECT = 1200.0
PITCH = 18.75
LATENCY_MS = 3.0
LEAD_MM = SPEED * LATENCY_MS * 1e-3


def _setup(jitter_ms: float = 0.0, min_pulse_ms: float = 2.0) -> tuple[SimWorld, ValveBankModel]:
    sim = SimConfig(density_per_m2=0.0, speed_drift_fraction=0.0, belt_speed_mm_s=SPEED, valve_latency_ms=LATENCY_MS)
    cam = CameraModel.looking_down(640, 360, 60.0, 1100.0, 600.0)
    w = SimWorld(sim, belt_width_mm=1200.0, nominal_speed_mm_s=SPEED, encoder_counts_per_mm=10.0, camera=cam)
    bank = w.add_valve_bank(64, PITCH, 0.0, Y_EJECT, jitter_ms=jitter_ms, min_pulse_ms=min_pulse_ms)
    return w, bank


def _valves(x_lo: float, x_hi: float) -> tuple[int, int]:
    return math.floor(x_lo / PITCH), math.floor(x_hi / PITCH)


def _aimed_pulse(w: SimWorld, oid: int, offset_mm: float = 0.0, margin_mm: float = 5.0) -> tuple[int, int, float, float]:
    """Valves and odometer window that put air on the whole object (shifted by ``offset_mm``), with the latency lead."""
    st = {s.object_id: s for s in w.object_states()}[oid]
    first, last = _valves(st.x_mm - st.half_width_mm - margin_mm, st.x_mm + st.half_width_mm + margin_mm)
    s_centre = Y_EJECT - st.u_mm  # odometer when the centre is on the line
    s_open = s_centre - st.half_length_mm - margin_mm - LEAD_MM + offset_mm
    s_close = s_centre + st.half_length_mm + margin_mm - LEAD_MM + offset_mm
    return first, last, s_open, s_close


def _run_until_s(w: SimWorld, s_mm: float) -> None:
    w.advance_to(w.t_ns_at_odometer(s_mm) + 1)


def test_a_perfectly_timed_pulse_ejects_the_object() -> None:
    w, bank = _setup()
    can = w.place_object("alu_can", 600.0, 0.0, angle_rad=math.pi / 2)
    first, last, s_open, s_close = _aimed_pulse(w, can)
    assert bank.schedule(1, first, last, s_open, s_close) == "accepted"
    _run_until_s(w, 1600.0)
    fates = {f.object_id: f for f in w.fates}
    assert fates[can].fate == "ejected" and fates[can].command_id == 1
    (rec,) = bank.executed
    assert rec.ejected_ids == (can,)
    assert rec.hit_object_id == can
    assert rec.fire_position_error_mm is not None and abs(rec.fire_position_error_mm) < 0.5
    # air starts one latency after the commanded position: the belt has moved speed x latency further
    assert rec.s_open_actual_mm == pytest.approx(s_open + LEAD_MM, abs=1e-3)


def test_a_pulse_100_mm_too_early_does_not_eject() -> None:
    w, bank = _setup()
    can = w.place_object("alu_can", 600.0, 0.0, angle_rad=math.pi / 2)
    first, last, s_open, s_close = _aimed_pulse(w, can, offset_mm=-100.0)
    assert bank.schedule(1, first, last, s_open, s_close) == "accepted"
    _run_until_s(w, 2000.0)
    fates = {f.object_id: f for f in w.fates}
    assert fates[can].fate == "passed"
    (rec,) = bank.executed
    assert rec.ejected_ids == ()
    # the air hit the can's leading part only; it was 100 mm upstream of the line at mid-pulse
    assert rec.hit_object_id == can
    assert rec.fire_position_error_mm == pytest.approx(-100.0, abs=0.5)


def test_air_hits_only_objects_under_the_open_valves_and_neighbours_can_be_co_ejected() -> None:
    w, bank = _setup()
    left = w.place_object("alu_can", 560.0, 0.0, angle_rad=math.pi / 2)
    right = w.place_object("alu_can", 640.0, 0.0, angle_rad=math.pi / 2)
    far = w.place_object("alu_can", 1000.0, 0.0, angle_rad=math.pi / 2)
    _f, _l, s_open, s_close = _aimed_pulse(w, left)
    first, last = _valves(520.0, 680.0)
    assert bank.schedule(7, first, last, s_open, s_close) == "accepted"
    _run_until_s(w, 2000.0)
    fates = {f.object_id: f.fate for f in w.fates}
    assert fates[left] == fates[right] == "ejected"
    assert fates[far] == "passed"


def test_a_pulse_beside_every_object_reports_no_error() -> None:
    w, bank = _setup()
    can = w.place_object("alu_can", 900.0, 0.0, angle_rad=math.pi / 2)
    _f, _l, s_open, s_close = _aimed_pulse(w, can)
    assert bank.schedule(3, 2, 4, s_open, s_close) == "accepted"  # valves over x = 37..94 mm
    _run_until_s(w, 2000.0)
    (rec,) = bank.executed
    assert rec.hit_object_id is None and rec.fire_position_error_mm is None
    assert {f.object_id: f.fate for f in w.fates}[can] == "passed"


def test_late_and_rejected_commands_are_refused_and_never_executed() -> None:
    w, bank = _setup()
    w.advance_to(100_000_000)
    s_now = w.odometer_mm(w.now_ns)
    assert bank.schedule(1, 3, 4, s_now - 1.0, s_now + 50.0) == "late"
    assert bank.schedule(2, 3, 4, s_now, s_now + 50.0) == "late"
    assert bank.schedule(3, 3, 64, s_now + 10.0, s_now + 50.0) == "rejected"
    assert bank.schedule(4, -1, 2, s_now + 10.0, s_now + 50.0) == "rejected"
    assert bank.schedule(5, 5, 4, s_now + 10.0, s_now + 50.0) == "rejected"
    assert bank.schedule(6, 3, 4, s_now + 50.0, s_now + 50.0) == "rejected"
    assert bank.schedule(7, 3, 4, float("nan"), s_now + 50.0) == "rejected"
    _run_until_s(w, s_now + 1000.0)
    assert bank.executed == []
    st = bank.stats()
    assert (st["late"], st["rejected"], st["accepted"], st["executed"]) == (2, 5, 0, 0)


def test_resending_a_command_id_is_idempotent() -> None:
    w, bank = _setup()
    assert bank.schedule(9, 1, 2, 100.0, 150.0) == "accepted"
    assert bank.schedule(9, 1, 2, 100.0, 150.0) == "accepted"
    _run_until_s(w, 500.0)
    assert [r.command_id for r in bank.executed] == [9]


def test_short_pulses_are_extended_to_the_minimum() -> None:
    w, bank = _setup(min_pulse_ms=4.0)
    assert bank.schedule(1, 1, 2, 100.0, 100.1) == "accepted"
    _run_until_s(w, 500.0)
    (rec,) = bank.executed
    assert rec.t_close_ns - rec.t_open_ns >= 4_000_000 - 1
    assert rec.s_close_actual_mm - rec.s_open_actual_mm == pytest.approx(SPEED * 0.004, abs=0.01)
    assert bank.stats()["extended"] == 1


def test_jitter_is_seeded_gaussian_with_the_configured_spread() -> None:
    w, bank = _setup(jitter_ms=0.5)
    expected = []
    for k in range(300):
        s_open = 100.0 + 30.0 * k
        bank.schedule(k, 1, 2, s_open, s_open + 20.0)
        expected.append(w.t_ns_at_odometer(s_open) + round(LATENCY_MS * 1e6))
    _run_until_s(w, 100.0 + 30.0 * 300 + 100.0)
    by_id = {r.command_id: r for r in bank.executed}
    dev_ms = np.array([(by_id[k].t_open_ns - expected[k]) * 1e-6 for k in range(300)])
    assert float(dev_ms.std()) == pytest.approx(0.5, rel=0.15)
    assert abs(float(dev_ms.mean())) < 0.1


def test_cancel_drops_a_pending_pulse_only() -> None:
    w, bank = _setup()
    bank.schedule(1, 1, 2, 100.0, 150.0)
    bank.schedule(2, 1, 2, 300.0, 350.0)
    assert bank.cancel(1) is True
    assert bank.cancel(1) is False
    assert bank.cancel(42) is False
    _run_until_s(w, 600.0)
    assert [r.command_id for r in bank.executed] == [2]
    assert bank.cancel(2) is False
    assert bank.stats()["cancelled"] == 1


def test_watchdog_closes_the_valves_and_drops_pending_pulses() -> None:
    w, bank = _setup()
    bank.schedule(1, 1, 2, 100.0, 200.0)
    bank.schedule(2, 1, 2, 400.0, 500.0)
    bank.schedule(3, 1, 2, 600.0, 700.0)
    t_mid = w.t_ns_at_odometer(150.0 + LEAD_MM)  # air of pulse 1 is on
    assert bank.close_all(t_mid) == 2
    (rec,) = bank.executed
    assert rec.command_id == 1 and rec.truncated
    assert rec.t_close_ns == t_mid
    _run_until_s(w, 1000.0)
    assert len(bank.executed) == 1
    assert bank.stats()["dropped_watchdog"] == 2


def test_reports_reach_listeners_in_time_order_and_executed_since_pages() -> None:
    w, bank = _setup()
    got: list[PulseRecord] = []
    bank.add_listener(got.append)
    bank.schedule(2, 1, 2, 500.0, 520.0)  # scheduled first, fires second
    bank.schedule(1, 1, 2, 200.0, 220.0)
    _run_until_s(w, 300.0)
    assert [r.command_id for r in bank.executed_since(0)] == [1]
    _run_until_s(w, 900.0)
    assert [r.command_id for r in got] == [1, 2]
    assert [r.command_id for r in bank.executed_since(1)] == [2]
    assert bank.executed_since(2) == []


def test_scoreboard_sees_the_ejection() -> None:
    w, bank = _setup()
    score = w.scoreboard(frozenset({class_id("alu_can")}))
    y_start = w.view_mm[2] - 200.0  # upstream of the view: it will cross it, so it counts
    can = w.place_object("alu_can", 600.0, y_start, angle_rad=math.pi / 2)
    bottle = w.place_object("pet_bottle", 300.0, y_start)
    first, last, s_open, s_close = _aimed_pulse(w, can)
    bank.schedule(1, first, last, s_open, s_close)
    _run_until_s(w, 3000.0)
    summary = score.summary()
    assert summary["objects_seen"] == 2
    assert summary["targets_passed"] == 1 and summary["targets_ejected"] == 1
    assert summary["recovery"] == 1.0 and summary["purity"] == 1.0
    assert summary["pulses"] == 1 and summary["fire_position_error_mm_max"] < 0.5
    assert summary["per_class"]["pet_bottle"]["passed"] == 1
    assert {f.object_id for f in w.fates} == {can, bottle}


def test_air_from_pins_already_switched_ejects_as_a_scheduled_pulse_would() -> None:
    """``blow``: a controller's pins switched at given times (read afterwards): the air follows by the valves'
    latency and is evaluated against where the objects were then, even once the world has moved on."""
    w, bank = _setup()
    can = w.place_object("alu_can", 600.0, 0.0, angle_rad=math.pi / 2)
    first, last, s_open, s_close = _aimed_pulse(w, can)
    t_open, t_close = w.t_ns_at_odometer(s_open), w.t_ns_at_odometer(s_close)
    w.advance_to(t_close + 5_000_000)  # the pin log is read 5 ms after the valves closed
    bank.blow(7, first, last, t_open, t_close)
    fates = {f.object_id: f for f in w.fates}
    assert fates[can].fate == "ejected" and fates[can].command_id == 7
    (rec,) = bank.executed
    assert rec.s_open_actual_mm == pytest.approx(s_open + LEAD_MM, abs=1e-3)  # one latency after the pin
    assert rec.fire_position_error_mm is not None and abs(rec.fire_position_error_mm) < 0.5


def test_air_from_pins_100_mm_early_misses_and_bad_valves_are_ignored() -> None:
    w, bank = _setup()
    can = w.place_object("alu_can", 600.0, 0.0, angle_rad=math.pi / 2)
    first, last, s_open, s_close = _aimed_pulse(w, can, offset_mm=-100.0)
    bank.blow(1, first, last, w.t_ns_at_odometer(s_open), w.t_ns_at_odometer(s_close))  # in the future: when due
    bank.blow(2, 60, 70, w.t_ns_at_odometer(s_open), w.t_ns_at_odometer(s_close))  # no valve 64..70: ignored
    _run_until_s(w, 2000.0)
    assert {f.object_id: f.fate for f in w.fates}[can] == "passed"
    (rec,) = bank.executed
    assert rec.command_id == 1 and rec.fire_position_error_mm == pytest.approx(-100.0, abs=0.5)
