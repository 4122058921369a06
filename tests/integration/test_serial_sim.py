"""The simulated line through the serial emulator matches the in-process valve bank, pulse for pulse.

Two identical simulated worlds (same seed) receive the same position-stamped
pulses, planned by a small ground-truth planner in this file: one world's
valve bank is scheduled directly (what the in-process virtual ejector does),
the other is driven through ``create_bridge_actuator`` (real bytes through a
socat pseudo-terminal pair into the valve-controller emulator, whose device is
that world's valve bank). The fast loop waits for the actuator to be idle
before each step, as ``sorter run --fast`` does. Positions cross the wire as
encoder counts of the emulated controller (``actuator.counts_per_mm``), so commanded
positions agree to half a count and the outcomes (ejected objects, fire position errors) agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from sorter.actuate.bridge import create_bridge_actuator
from sorter.actuate.links import link_counts_per_mm
from sorter.clock import ManualClock
from sorter.config import Config, load_config
from sorter.entities import MATERIAL_CLASSES, CommandReport, FireCommand
from sorter.sim.mount import sim_camera_model
from sorter.sim.outputs import SimOutputs
from sorter.sim.world import SimWorld

STEP_NS = 5_000_000  # 5 ms of simulated belt per loop step


def make_world(cfg: Config) -> tuple[SimWorld, Any]:
    world = SimWorld(
        cfg.sim,
        belt_width_mm=cfg.belt.width_mm,
        nominal_speed_mm_s=cfg.belt.nominal_speed_mm_s,
        encoder_counts_per_mm=cfg.belt.encoder_counts_per_mm,
        camera=sim_camera_model(cfg),
        class_names=MATERIAL_CLASSES,
    )
    v = cfg.airjet.valves
    bank = world.add_valve_bank(
        valve_count=v.count, valve_pitch_mm=v.pitch_mm, valve_x_first_mm=v.x_first_mm, y_eject_mm=cfg.airjet.y_eject_mm
    )
    return world, bank


@dataclass
class TruthPlanner:
    """Fires at every object of a target class, from its true position (no camera, no tracker)."""

    cfg: Config
    targets: frozenset[int]
    next_id: int = 1
    planned: set[int] = field(default_factory=set)

    def plan(self, world: SimWorld, t_ns: int) -> list[FireCommand]:
        cfg = self.cfg
        v = cfg.airjet.valves
        s_now = world.odometer_mm(t_ns)
        lead_mm = world.speed_mm_s(t_ns) * v.latency_ms / 1000.0
        out = []
        for o in world.object_states(t_ns):
            if o.object_id in self.planned or o.class_id not in self.targets:
                continue
            s_centre = cfg.airjet.y_eject_mm - o.u_mm
            if not 120.0 < s_centre - s_now < 400.0:
                continue
            self.planned.add(o.object_id)
            first = max(0, math.floor((o.x_mm - o.half_width_mm - v.x_first_mm) / v.pitch_mm))
            last = min(v.count - 1, math.floor((o.x_mm + o.half_width_mm - v.x_first_mm) / v.pitch_mm))
            s_open = s_centre - o.half_length_mm - v.margin_mm - lead_mm
            s_close = s_centre + o.half_length_mm + v.margin_mm - lead_mm
            if self.next_id % 7 == 0:  # now and then a command that is already late: both paths must refuse it
                s_open = s_now - 1.0
            out.append(FireCommand(self.next_id, o.object_id, first, last, s_open, s_close, s_centre, o.class_id, t_ns))
            self.next_id += 1
        return out


def run_reference(cfg: Config, duration_s: float) -> tuple[list[Any], dict[int, str]]:
    """Pulses scheduled on the valve bank directly (the in-process path)."""
    world, bank = make_world(cfg)
    planner = TruthPlanner(cfg, frozenset({0, 1}))
    answers: dict[int, str] = {}
    t = 0
    while t < duration_s * 1e9:
        t += STEP_NS
        world.advance_to(t)
        for c in planner.plan(world, t):
            answers[c.command_id] = bank.schedule(c.command_id, c.valve_first, c.valve_last, c.s_open_mm, c.s_close_mm)
    world.advance_to(t + 2_000_000_000)
    return bank.executed, answers


def run_bridged(cfg: Config, duration_s: float) -> tuple[list[Any], list[CommandReport], dict[str, int]]:
    """The same line with the bank behind the emulator and a real transport."""
    world, bank = make_world(cfg)
    clock = ManualClock()
    act = create_bridge_actuator(cfg, clock, SimOutputs(world, bank))
    planner = TruthPlanner(cfg, frozenset({0, 1}))
    reports: list[CommandReport] = []
    try:
        t = 0
        while t < duration_s * 1e9:
            t += STEP_NS
            clock.set_ns(t)
            world.advance_to(t)
            cmds = planner.plan(world, t)
            if cmds:
                act.submit(cmds)
            # a busy machine may hold the link process; the message says which half of the wait never completed
            assert act.wait_idle(30.0), f"the actuator did not answer in time: link {act.stats()}, bank {bank.stats()}"
            reports += act.poll_reports()
        world.advance_to(t + 2_000_000_000)
        assert act.wait_idle(30.0)
        reports += act.poll_reports()
        stats = act.stats()
    finally:
        act.close()
    return bank.executed, reports, stats


def lenient_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Emulators whose watchdog allows 10 s without a heartbeat (instead of 100 ms of wall time).

    These tests compare positions and outcomes on simulated time; a loaded machine can hold the link's
    heartbeat thread past 100 ms, and a watchdog trip (valves closed, a real-time behaviour tested in
    test_links.py and test_controller_link_loss.py) would then change the pulses.
    """
    import sorter.actuate.bridge as bridge

    real = bridge.simulation_limits
    monkeypatch.setattr(bridge, "simulation_limits", lambda max_pulse_ms: replace(real(max_pulse_ms), watchdog_ms=10_000.0))


def compare(cfg: Config, duration_s: float) -> dict[str, int]:
    ref_pulses, ref_answers = run_reference(cfg, duration_s)
    pulses, reports, stats = run_bridged(cfg, duration_s)
    assert len(ref_pulses) >= 10, "the scenario should fire a fair number of pulses"
    assert [p.command_id for p in pulses] == [p.command_id for p in ref_pulses]
    cpm = link_counts_per_mm(cfg)
    for a, b in zip(pulses, ref_pulses, strict=True):
        assert abs(a.s_open_cmd_mm - b.s_open_cmd_mm) <= 0.5 / cpm + 1e-9
        assert abs(a.s_close_cmd_mm - b.s_close_cmd_mm) <= 0.5 / cpm + 1e-9
        assert a.ejected_ids == b.ejected_ids
        assert a.hit_object_id == b.hit_object_id
        if a.fire_position_error_mm is not None and b.fire_position_error_mm is not None:
            assert abs(a.fire_position_error_mm - b.fire_position_error_mm) <= 1.0 / cpm + 1e-6
    by_status: dict[str, int] = {}
    for r in reports:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    ref_status = {k: sum(1 for v in ref_answers.values() if v == k) for k in ("accepted", "late", "rejected")}
    assert by_status.get("accepted", 0) == ref_status["accepted"]
    assert by_status.get("late", 0) == ref_status["late"]
    assert by_status.get("executed", 0) == len(pulses)
    tol = 2.0 / cfg.belt.encoder_counts_per_mm  # as the runtime's accounting: past its commanded position = late
    want = {c: p.s_open_cmd_mm for c, p in ((p.command_id, p) for p in pulses)}
    late_exec = [
        r for r in reports if r.status == "executed" and r.s_actual_mm is not None and r.s_actual_mm > want[r.command_id] + tol
    ]
    assert late_exec == []
    assert stats["link_watchdog_faults"] == 0
    # no pulse ran that the host had called late, rejected or cancelled (counted by the serial link)
    assert stats.get("link_executed_after_outcome", 0) == 0
    return by_status


def test_serial_emulator_matches_the_in_process_bank(monkeypatch: pytest.MonkeyPatch) -> None:
    lenient_watchdog(monkeypatch)
    cfg = load_config(["sim-airjet-serial.yaml"], ["sim.density_per_m2=6"])
    assert link_counts_per_mm(cfg) == 2560
    assert cfg.actuator.type == "serial"
    counts = compare(cfg, duration_s=6.0)
    assert counts["executed"] >= 10 and counts["late"] >= 2


def test_whole_encoder_counts_round_positions_to_the_encoder_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """A controller that counts whole encoder edges (10 counts/mm): same pulses, positions within 0.05 mm."""
    lenient_watchdog(monkeypatch)
    cfg = load_config(["sim-airjet-serial.yaml"], ["sim.density_per_m2=6", "actuator.counts_per_mm=null"])
    assert link_counts_per_mm(cfg) == 10
    counts = compare(cfg, duration_s=3.0)
    assert counts["executed"] >= 5
