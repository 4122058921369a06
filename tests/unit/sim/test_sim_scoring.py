"""Scoreboard arithmetic, and a whole virtual air-jet line driven from ground truth."""

from __future__ import annotations

import math

import pytest

from sorter.entities import MATERIAL_CLASSES, class_id
from sorter.geometry import CameraModel
from sorter.sim.config import SimConfig
from sorter.sim.records import ObjectFate, PickRecord, PulseRecord
from sorter.sim.scoring import Scoreboard
from sorter.sim.world import SimWorld

BOTTLE = class_id("pet_bottle")
CAN = class_id("alu_can")


def _pulse(cid: int, error: float | None, truncated: bool = False) -> PulseRecord:
    return PulseRecord(cid, 1, 2, 0.0, 10.0, 0, 1, 0.0, 10.0, (), None, error, truncated)


def test_scoreboard_arithmetic() -> None:
    sb = Scoreboard(frozenset({BOTTLE, CAN}))
    fates = [
        ObjectFate(1, BOTTLE, "ejected", 0, True, 11),
        ObjectFate(2, BOTTLE, "ejected", 0, True, 12),
        ObjectFate(3, BOTTLE, "passed", 0, True),
        ObjectFate(4, CAN, "picked", 0, True, 13),
        ObjectFate(5, class_id("paper"), "ejected", 0, True, 12),  # co-ejected neighbour
        ObjectFate(6, class_id("film"), "passed", 0, True),
        ObjectFate(7, BOTTLE, "passed", 0, False),  # never crossed the whole view: not counted
    ]
    for f in fates:
        sb.record_fate(f)
    for e in (1.0, -3.0, 2.0, None):
        sb.record_pulse(_pulse(1, e))
    sb.record_pick(PickRecord(13, 0, 0.0, True, False, 4, 2.5))
    sb.record_pick(PickRecord(14, 0, 0.0, False, True, None, None))
    s = sb.summary()
    assert s["objects_seen"] == 6 and s["objects_uncounted"] == 1
    assert s["targets_passed"] == 4
    assert (s["targets_ejected"], s["targets_picked"], s["nontargets_ejected"]) == (2, 1, 1)
    assert s["recovery"] == pytest.approx(3 / 4)
    assert s["purity"] == pytest.approx(3 / 4)
    assert s["pulses"] == 4 and s["pulses_without_object"] == 1
    assert sorted(s["fire_position_errors_mm"]) == [1.0, 2.0, 3.0]
    assert s["fire_position_error_mm_p50"] == pytest.approx(2.0)
    assert s["fire_position_error_mm_max"] == pytest.approx(3.0)
    assert 2.0 < s["fire_position_error_mm_p99"] <= 3.0
    assert (s["picks_attempted"], s["picks_succeeded"], s["picks_busy"]) == (2, 1, 1)
    assert s["pick_error_mm_p50"] == pytest.approx(2.5)
    assert s["pick_success"] == pytest.approx(0.5)
    assert s["per_class"]["pet_bottle"] == {"seen": 3, "ejected": 2, "picked": 0, "passed": 1}
    assert s["per_class"]["paper"]["ejected"] == 1
    assert sum(c["seen"] for c in s["per_class"].values()) == s["objects_seen"]


def test_empty_scoreboard_has_no_recovery_and_full_purity() -> None:
    sb = Scoreboard(frozenset({BOTTLE}), MATERIAL_CLASSES)
    sb.record_fate(ObjectFate(1, CAN, "passed", 0, True))
    s = sb.summary()
    assert sb.recovery is None and s["recovery"] == 0.0 and s["targets_passed"] == 0
    assert s["purity"] == 1.0
    assert s["fire_position_error_mm_p50"] is None


def test_a_line_planned_from_ground_truth_recovers_every_target() -> None:
    speed, latency_ms, y_eject, pitch = 2500.0, 3.0, 1200.0, 18.75
    sim = SimConfig(seed=21, density_per_m2=2.0, slide_fraction=0.0, valve_latency_ms=latency_ms, belt_speed_mm_s=speed)
    cam = CameraModel.looking_down(640, 360, 60.0, 1100.0, 600.0, dist=(-0.04, 0.01, 0.0, 0.0, 0.0))
    w = SimWorld(sim, belt_width_mm=1200.0, nominal_speed_mm_s=speed, encoder_counts_per_mm=10.0, camera=cam)
    bank = w.add_valve_bank(64, pitch, 0.0, y_eject)
    score = w.scoreboard(frozenset({BOTTLE}))
    planned: set[int] = set()
    frame_ns = 16_666_667
    y_view_start = w.view_mm[2]
    for i in range(1, 60 * 12):
        f = w.capture(i * frame_ns, i, render=False)
        lead_mm = w.speed_mm_s(f.t_capture_ns) * latency_ms * 1e-3
        for t in f.truth or ():
            if t.class_id != BOTTLE or t.object_id in planned or t.y_w_mm - t.length_mm / 2 < y_view_start:
                continue
            planned.add(t.object_id)
            u = t.y_w_mm - f.s_capture_mm
            first = max(0, math.floor((t.x_mm - t.width_mm / 2 - 5.0) / pitch))
            last = min(63, math.floor((t.x_mm + t.width_mm / 2 + 5.0) / pitch))
            s_centre = y_eject - u
            status = bank.schedule(
                t.object_id, first, last, s_centre - t.length_mm / 2 - 10 - lead_mm, s_centre + t.length_mm / 2 + 10 - lead_mm
            )
            assert status == "accepted"
    s = score.summary()
    assert s["targets_passed"] >= 8
    assert s["recovery"] == 1.0
    assert s["fire_position_error_mm_p50"] is not None and s["fire_position_error_mm_p50"] < 1.0
    assert 0.3 < s["purity"] <= 1.0
    assert s["objects_seen"] > s["targets_passed"]
