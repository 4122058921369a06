"""Host-timed fallback: a timing thread switching "dumb" outputs at positions converted to times.

Correctness only (timing numbers are measured by scripts/bench_link.py): every
pulse opens no later than the lateness tolerance after the instant the belt
reaches its position, late commands are refused, cancels and the maximum
pulse work, and nothing is left open.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from sorter.actuate.base import NoPlant
from sorter.actuate.host_timed import HostTimedActuator, RecordingRelayOutput, create_host_timed_actuator
from sorter.clock import ManualClock, MonotonicClock
from sorter.config import load_config
from sorter.entities import CommandReport, FireCommand, PickCommand
from sorter.errors import ConfigError

if TYPE_CHECKING:
    from sorter.config import Config
    from sorter.sim.ejector import ValveBankModel
    from sorter.sim.world import SimWorld

SPEED_MM_S = 2500.0


class ConstantBelt:
    """An encoder-less belt at a constant speed on the host clock (odometer 0 at ``t0_ns``)."""

    def __init__(self, t0_ns: int, speed_mm_s: float = SPEED_MM_S) -> None:
        self.t0_ns = t0_ns
        self.speed = speed_mm_s

    def odometer_mm(self, t_ns: int) -> float:
        return self.speed * (t_ns - self.t0_ns) / 1e9

    def speed_mm_s(self, t_ns: int) -> float:
        return self.speed

    def t_ns_at(self, s_mm: float) -> int:
        return self.t0_ns + round(s_mm / self.speed * 1e9)


def fire(cid: int, s_open: float, s_close: float, first: int = 0, last: int = 0) -> FireCommand:
    return FireCommand(cid, cid, first, last, s_open, s_close, (s_open + s_close) / 2, 0, 0)


def test_pulses_switch_on_time_and_late_ones_are_refused() -> None:
    clock = MonotonicClock()
    belt = ConstantBelt(clock.now_ns())
    out = RecordingRelayOutput(clock)
    act = HostTimedActuator(clock, belt, out, valve_count=8, max_pulse_ms=80.0, late_tolerance_ms=1.0)
    try:
        s_now = belt.odometer_mm(clock.now_ns())
        cmds = [fire(i, s_now + 100 + 60 * i, s_now + 150 + 60 * i, i % 8, i % 8) for i in range(20)]  # 40 ms ... 0.5 s ahead
        cmds.append(fire(99, s_now - 5, s_now + 50))  # already passed
        act.submit(cmds)
        deadline = time.monotonic() + 3.0
        reports: list[CommandReport] = []
        while time.monotonic() < deadline and sum(r.status in ("executed", "late") for r in reports) < 21:
            reports += act.poll_reports()
            time.sleep(0.01)
        st = {r.command_id: r.status for r in reports if r.status != "accepted"}
        assert st[99] == "late"
        tol_ns = 1_000_000
        opens = [(t, first) for t, first, _last, on in out.events if on]
        executed = [cid for cid, s in st.items() if s == "executed"]
        late = [cid for cid, s in st.items() if s == "late" and cid != 99]
        assert len(executed) + len(late) == 20
        assert len(executed) >= 15  # an idle machine fires them all; a loaded one may refuse a few as late
        for cid in executed:
            c = cmds[cid]
            t_target = belt.t_ns_at(c.s_open_mm)
            t_on = next(t for t, first in opens if first == c.valve_first and t >= t_target - 5_000_000)
            assert t_on - t_target <= tol_ns + 200_000  # opened within the tolerance (+ recording overhead)
        s = act.stats()
        assert s["switches_timed"] >= 2 * len(executed) and s["jitter_p99_us"] >= 0
    finally:
        act.close()
    assert out.open_valves == set()


def test_cancel_max_pulse_and_refusals() -> None:
    clock = MonotonicClock()
    belt = ConstantBelt(clock.now_ns())
    out = RecordingRelayOutput(clock)
    act = HostTimedActuator(clock, belt, out, valve_count=4, max_pulse_ms=30.0)
    try:
        s_now = belt.odometer_mm(clock.now_ns())
        act.submit([fire(1, s_now + 250, s_now + 300), fire(2, s_now + 100, s_now + 2000, 1, 1)])  # 2: a 760 ms pulse
        act.submit([fire(3, s_now + 200, s_now + 250, 2, 9)])  # valve 9 of 0..3
        act.submit([PickCommand(4, 4, 10.0, 0.0, s_now + 300, 0, 1.0, 0)])
        act.cancel([1])
        time.sleep(0.25)
        reports = act.poll_reports()
        st = {r.command_id: r.status for r in reports if r.status != "accepted"}
        assert st == {1: "cancelled", 2: "executed", 3: "rejected", 4: "rejected"}
        on = next(t for t, first, _l, is_on in out.events if first == 1 and is_on)
        off = next(t for t, first, _l, is_on in out.events if first == 1 and not is_on)
        assert 29e6 <= off - on <= 45e6  # cut at 30 ms (the belt would have needed 760 ms)
        assert act.stats()["max_pulse_cut"] == 1
        assert all(first != 0 for _t, first, _l, _on in out.events)  # the cancelled pulse never switched
    finally:
        act.close()


def test_a_stopping_line_gives_every_command_its_outcome() -> None:
    """At the end of a run a pulse blowing is closed and reported executed, a queued one is cancelled,
    and neither switches afterwards."""
    clock = MonotonicClock()
    belt = ConstantBelt(clock.now_ns())
    out = RecordingRelayOutput(clock)
    act = HostTimedActuator(clock, belt, out, valve_count=4, max_pulse_ms=2000.0, late_tolerance_ms=1000.0)  # a busy machine
    try:
        s_now = belt.odometer_mm(clock.now_ns())
        act.submit([fire(1, s_now + 50, s_now + 2500, 1, 1), fire(2, s_now + 1500, s_now + 1600, 2, 2)])  # 20 ms / 600 ms
        deadline = time.monotonic() + 5.0
        while 1 not in out.open_valves and time.monotonic() < deadline:
            time.sleep(0.005)
        assert out.open_valves == {1}
        act.finish_outstanding()
        outcome = {r.command_id: r for r in act.poll_reports() if r.status != "accepted"}
        assert {cid: r.status for cid, r in outcome.items()} == {1: "executed", 2: "cancelled"}
        assert outcome[1].s_actual_mm is not None and outcome[1].s_actual_mm >= s_now + 50 - 1e-6
        assert out.open_valves == set()
        n_switches = len(out.events)
        time.sleep(0.8)  # past command 2's opening and command 1's closing positions
        assert len(out.events) == n_switches and act.poll_reports() == []
        assert act.stats()["cancelled"] == 1 and act.stats()["executed"] == 1
    finally:
        act.close()


def test_factory_refuses_a_simulated_clock_and_a_real_line() -> None:
    cfg = load_config(None, ["actuator.type=host_timed"])
    with pytest.raises(ConfigError, match="without --fast"):
        create_host_timed_actuator(cfg, ManualClock(), NoPlant())
    with pytest.raises(ConfigError, match="simulated air-jet line only"):
        create_host_timed_actuator(cfg, MonotonicClock(), NoPlant())


def sim_line(clock: MonotonicClock) -> tuple[Config, SimWorld, ValveBankModel]:
    """Host-timed valves on the simulator's valve bank (config, world, bank), the world's time 0 now."""
    from sorter.entities import MATERIAL_CLASSES
    from sorter.sim.mount import sim_camera_model
    from sorter.sim.world import SimWorld

    cfg = load_config(None, ["actuator.type=host_timed", "sim.density_per_m2=0"])
    world = SimWorld(  # as the live runtime builds it
        cfg.sim,
        belt_width_mm=cfg.belt.width_mm,
        nominal_speed_mm_s=cfg.belt.nominal_speed_mm_s,
        encoder_counts_per_mm=cfg.belt.encoder_counts_per_mm,
        camera=sim_camera_model(cfg),
        class_names=MATERIAL_CLASSES,
        t0_ns=clock.now_ns(),
    )
    v = cfg.airjet.valves
    bank = world.add_valve_bank(
        valve_count=v.count, valve_pitch_mm=v.pitch_mm, valve_x_first_mm=v.x_first_mm, y_eject_mm=cfg.airjet.y_eject_mm
    )
    return cfg, world, bank


def test_simulated_line_in_real_time() -> None:
    """The factory's simulator outputs: pulses land on the virtual valve bank at the switching instants."""
    from sorter.sim.outputs import SimOutputs

    clock = MonotonicClock()
    cfg, world, bank = sim_line(clock)
    act = create_host_timed_actuator(cfg, clock, SimOutputs(world, bank))
    try:
        s_now = world.odometer_mm(clock.now_ns())
        act.submit([fire(i, s_now + 150 + 100 * i, s_now + 200 + 100 * i, i, i + 2) for i in range(5)])
        t_end = time.monotonic() + 0.6
        while time.monotonic() < t_end:
            world.advance_to(clock.now_ns())
            time.sleep(0.005)
        world.advance_to(clock.now_ns() + 200_000_000)
        pulses = bank.executed
        status = {r.command_id: r.status for r in act.poll_reports() if r.status != "accepted"}
        fired = sorted(p.command_id for p in pulses)
        assert fired == sorted(c for c, st in status.items() if st == "executed")  # refused ones never blew
        assert set(status.values()) <= {"executed", "late"} and len(status) == 5
        assert len(fired) >= 3  # a busy machine may refuse one as late rather than fire it late
        for p in pulses:  # switched "now" at the commanded position: within 1 ms of belt (2.5 mm) and the jitter
            assert abs(p.s_open_cmd_mm - (s_now + 150 + 100 * p.command_id)) <= 2.6
    finally:
        act.close()


def test_a_switch_held_up_past_its_tolerance_is_not_fired() -> None:
    """The output is reached too late (here the simulated bank, busy drawing a frame under its lock, as a
    relay bus can be busy): the command is refused as late and no air blows, rather than firing late."""
    from sorter.sim.outputs import SimOutputs

    clock = MonotonicClock()
    cfg, world, bank = sim_line(clock)
    act = create_host_timed_actuator(cfg, clock, SimOutputs(world, bank))
    try:
        s_now = world.odometer_mm(clock.now_ns())
        act.submit([fire(1, s_now + 100, s_now + 150, 3, 4)])  # 40 ms ahead at 2.5 m/s
        with world.lock:
            time.sleep(0.2)  # past the opening, its tolerance and the closing position
        deadline = time.monotonic() + 3.0
        status: dict[int, CommandReport] = {}
        while 1 not in status and time.monotonic() < deadline:
            status.update({r.command_id: r for r in act.poll_reports() if r.status != "accepted"})
            time.sleep(0.01)
        world.advance_to(clock.now_ns())
        assert status[1].status == "late" and "not fired" in status[1].detail
        assert bank.executed == [] and bank.pending_ids() == []
        assert act.stats()["late_at_fire"] == 1
    finally:
        act.close()
