"""The controller link in its own process, against the real emulators, killed and restarted.

Each row is a real peer: the valve-controller emulator behind a socat pseudo-terminal
(serial) or the PLC emulator's pymodbus server on loopback TCP (Modbus). The link runs
in a spawned child process; the test kills (or hangs) that process and checks what a
plant needs: the line hears it at once, the link comes back by itself, and every command
in flight ends with the outcome the controller gives it, never a guess: executed (with
the counts it fired at) when it fired while no link listened, queued again and executed
when its watchdog dropped it while still ahead, cancelled when the line cancels it
meanwhile. ``sent`` equals the sum of outcomes, nothing is fired twice, nothing late.
The belt is stopped where a command must stay ahead during a restart, so no test depends
on how fast a process starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import Fire
from sorter.actuate.link_ledger import LOST, NOT_FINAL, Backoff
from sorter.actuate.link_process import HANG_S, ProcessLink
from sorter.actuate.links import EmulatorPeer, link_where, simulation_limits, start_emulator
from sorter.config import load_config

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")

SPEED_COUNTS_PER_S = 25_000.0
LEAD_COUNTS = 50_000  # 2 s ahead: executed on time however busy the machine is
TOLERANCE_COUNTS = 250  # an execution more than 10 ms of belt past its position would be late
PATIENCE_S = 60.0  # generous: a spawned process imports for seconds on a busy machine; behaviour, not speed


class Rig:
    """A link process against an emulator, recording every event and every health report."""

    def __init__(self, kind: str, watchdog_ms: float = 100.0) -> None:
        cfg = load_config(None, [f"actuator.type={kind}"])
        self.device = FreeRunningDevice(8, SPEED_COUNTS_PER_S)
        limits = dataclasses.replace(simulation_limits(80.0), watchdog_ms=watchdog_ms)
        self.peer: EmulatorPeer = start_emulator(cfg.actuator, kind, self.device, limits)
        where, _ = link_where(self.peer.actuator, kind, emulated=True)
        self.health: list[str | None] = []
        self.link = ProcessLink(self.peer.actuator, kind, where, backoff=Backoff(min_s=0.05, max_s=0.5),
                                on_health=self.health.append)
        self.wanted: dict[int, int] = {}
        self.events: dict[int, list[LinkEvent]] = {}
        self._next_id = 1

    def poll(self) -> None:
        for ev in self.link.poll_events():
            self.events.setdefault(ev.command_id, []).append(ev)

    def finals(self, cid: int) -> list[LinkEvent]:
        return [e for e in self.events.get(cid, []) if e.status not in NOT_FINAL]

    def wait(self, done: Callable[[], bool], what: str) -> None:
        t_end = time.monotonic() + PATIENCE_S
        while not done():
            assert time.monotonic() < t_end, f"{what} never happened; events {self.events}, health {self.health}"
            self.poll()
            time.sleep(0.01)

    def count_now(self) -> int:
        self.wait(lambda: self.link.sync.count_at(time.monotonic_ns()) is not None, "an odometer probe")
        count = self.link.sync.count_at(time.monotonic_ns())
        assert count is not None
        return int(count)

    def submit(self, n: int, lead_counts: int) -> list[int]:
        base = self.count_now() + lead_counts
        ids = []
        for i in range(n):
            cid = self._next_id
            self._next_id += 1
            self.wanted[cid] = base + 1250 * i  # 50 ms apart
            self.link.submit(Fire(cid, i % 8, i % 8, self.wanted[cid], self.wanted[cid] + 100))
            ids.append(cid)
        return ids

    def wait_final(self, ids: list[int]) -> None:
        self.wait(lambda: all(self.finals(cid) for cid in ids), f"outcomes of commands {ids}")

    def execute(self, n: int) -> list[int]:
        """Submit ``n`` commands 2 s ahead until some are executed; every one ends in exactly one outcome.

        A machine too busy for the emulator (it runs in this test's process) can trip its watchdog, and then
        the controller refuses a batch: that refusal is an outcome too, never a late execution.
        """
        ids: list[int] = []
        for _ in range(5):
            batch = self.submit(n, LEAD_COUNTS)
            self.wait_final(batch)
            ids += batch
            if any(self.finals(c)[0].status == "executed" for c in batch):
                return ids
        raise AssertionError(f"no command executed in 5 batches: {[self.finals(c)[0] for c in ids]}")

    def accepted(self, ids: list[int]) -> None:
        self.wait(lambda: all(self.events.get(c) for c in ids), f"the controller accepting commands {ids}")

    def executed_on_time(self, ids: list[int]) -> None:
        """Each ended ``executed``, once, at the counts the controller fired at, never past its position."""
        core = self.peer.emulator.core
        for cid in ids:
            (final,) = self.finals(cid)
            assert final.status == "executed", final
            fired = core.execution_of(cid)
            assert fired is not None and (final.open_count, final.close_count) == (fired.open_count, fired.close_count)
            assert 0 <= fired.open_count - self.wanted[cid] <= TOLERANCE_COUNTS

    def close(self) -> None:
        try:
            self.link.close()
        finally:
            self.peer.stop()


def _started(kind: str, watchdog_ms: float = 100.0) -> Iterator[Rig]:
    r = Rig(kind, watchdog_ms)
    try:
        r.link.start()
        assert r.link.wait_ready(PATIENCE_S), f"{r.link.where} never got ready"
        yield r
    finally:
        r.close()


@pytest.fixture(params=["serial", "modbus"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    yield from _started(request.param)


@pytest.fixture(params=["serial", "modbus"])
def patient_rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    """A controller whose watchdog outlasts a hung link process (10 minutes): it keeps its queue and fires on."""
    yield from _started(request.param, watchdog_ms=600_000.0)


def test_commands_the_watchdog_dropped_when_the_link_was_killed_are_queued_again_and_executed(rig: Rig) -> None:
    link = rig.link
    core = rig.peer.emulator.core
    assert link.priority  # the child said at which priority it runs (raised, or normal and why)
    rig.execute(5)

    in_flight = rig.submit(6, LEAD_COUNTS)
    rig.accepted(in_flight)
    rig.device.set_speed(0.0)  # the belt stops: their positions stay ahead however long the restart takes
    trips = core.counters.watchdog_trips
    pid = link.child_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    rig.wait(lambda: bool(rig.health), "the health listener hearing of the death")
    assert rig.health[0] == "process died (killed by SIGKILL), restarting"
    rig.wait(lambda: core.counters.watchdog_trips > trips, "the controller's watchdog tripping")
    assert not any(core.is_pending(c) for c in in_flight)  # dropped by the controller, not in its history
    assert not any(rig.finals(c) for c in in_flight)  # no outcome guessed

    assert link.wait_ready(PATIENCE_S)
    rig.wait(lambda: rig.health[-1] is None, "the health listener hearing the link is back")
    assert link.health() is None and link.child_pid() not in (None, pid)
    rig.wait(lambda: all(core.is_pending(c) for c in in_flight), "the restarted link queueing them again")
    rig.device.set_speed(SPEED_COUNTS_PER_S)
    rig.wait_final(in_flight)
    rig.executed_on_time(in_flight)
    rig.execute(5)  # the restarted link executes new commands

    rig.poll()
    stats = link.stats()
    assert stats["process_deaths"] == 1 and stats["process_restarts"] == 1 and stats["carried_over"] == 6
    assert stats["lost"] == 0
    for cid in rig.wanted:  # exactly one outcome per command, and no execution past its position
        (final,) = rig.finals(cid)
        if final.status == "executed":
            assert final.open_count is not None and final.open_count - rig.wanted[cid] <= TOLERANCE_COUNTS
    outcomes: list[str] = [rig.finals(c)[0].status for c in rig.wanted]
    assert link.balanced() and stats["outstanding"] == 0
    assert core.counters.executed == outcomes.count("executed")  # each fired once: none twice, none unreported


def test_commands_the_controller_fired_while_the_link_hung_are_reported_executed_not_lost(patient_rig: Rig) -> None:
    rig = patient_rig
    link = rig.link
    core = rig.peer.emulator.core
    fired = rig.submit(3, LEAD_COUNTS)  # 2 s ahead: fired while the link process hangs
    queued = rig.submit(3, 2 * LEAD_COUNTS)  # 4 s ahead: still queued in the controller when a new link asks
    rig.accepted(fired + queued)
    pid = link.child_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive but silent: it reads none of the controller's reports
    rig.wait(lambda: all(core.execution_of(c) is not None for c in fired), "the controller firing")
    rig.device.set_speed(0.0)  # the rest stays ahead until the new link is up
    assert not any(rig.finals(c) for c in queued)
    rig.wait(lambda: bool(rig.health), "the supervisor killing the hung process")
    assert link.wait_ready(PATIENCE_S) and link.child_pid() not in (None, pid)
    rig.wait_final(fired)  # the controller's record, asked by the new link
    rig.executed_on_time(fired)
    rig.device.set_speed(SPEED_COUNTS_PER_S)
    rig.wait_final(queued)
    rig.executed_on_time(queued)
    stats = link.stats()
    assert stats["lost"] == 0 and link.balanced() and core.counters.executed == len(fired + queued)


def test_commands_submitted_while_the_link_is_down_are_lost_at_once_not_queued(rig: Rig) -> None:
    link = rig.link
    rig.count_now()
    pid = link.child_pid()
    assert pid is not None
    stopped = threading.Event()

    def submit_while_down() -> None:
        while link.child_pid() == pid and not stopped.is_set():  # (a busy machine may miss the gap between processes)
            time.sleep(0.001)
        if not stopped.is_set():
            rig.submit(3, LEAD_COUNTS)

    t = threading.Thread(target=submit_while_down)
    t.start()
    os.kill(pid, signal.SIGKILL)
    t.join(PATIENCE_S)
    stopped.set()
    assert rig.wanted, "no command was submitted"
    rig.wait_final(list(rig.wanted))
    assert all(len(rig.finals(c)) == 1 for c in rig.wanted)
    statuses = {rig.finals(c)[0].status for c in rig.wanted}
    # while no link process runs a submission ends as lost at once; one that reached the restarted link is
    # executed, or refused as late if the restart took longer than its lead: never anything else, never twice
    assert statuses <= {LOST, "executed", "late"}
    assert link.wait_ready(PATIENCE_S) and link.balanced()


def test_a_hung_link_process_is_killed_and_restarted(rig: Rig) -> None:
    link = rig.link
    queued = rig.submit(3, 60 * int(SPEED_COUNTS_PER_S))
    rig.accepted(queued)
    pid = link.child_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive but silent: a hung process
    rig.wait(lambda: bool(rig.health), "the health listener hearing of the hang")
    assert rig.health[0] == f"process died (stopped answering for {HANG_S:g} s), restarting"
    link.cancel(queued[0])  # asked while no link process runs: forwarded to the next one
    assert link.wait_ready(PATIENCE_S) and link.child_pid() not in (None, pid)
    core = rig.peer.emulator.core
    rig.wait(lambda: all(core.is_pending(c) for c in queued[1:]), "the new link queueing them again (a minute ahead)")
    for cid in queued[1:]:
        link.cancel(cid)
    rig.wait_final(queued)
    # the controller's word, not a guess
    assert [rig.finals(c)[0].status for c in queued] == ["cancelled"] * 3, [rig.events[c] for c in queued]
    assert not any(core.is_pending(c) or core.execution_of(c) for c in queued)
    rig.execute(3)
    assert link.balanced() and link.stats()["lost"] == 0


def _status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


def _wait_status(port: int, pred: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    t_end = time.monotonic() + PATIENCE_S
    last: dict[str, Any] = {}
    while time.monotonic() < t_end:
        last = _status(port)
        if pred(last):
            return last
        time.sleep(0.02)
    raise AssertionError(f"{what} never happened; last status {last}")


def _link_died(status: dict[str, Any]) -> str | None:
    """The reason the service gave for a dead link process: in its state now, or in its recent faults."""
    if status["state"] == "degraded" and "link:" in status["reason"]:
        return str(status["reason"])
    for fault in status.get("faults_recent", []):
        if fault["kind"] == "link" and fault["state"] == "degraded":
            return str(fault["reason"])
    return None


@pytest.mark.parametrize("config", ["sim-airjet-serial.yaml", "sim-airjet-modbus.yaml"])
def test_a_live_line_whose_link_process_is_killed_degrades_accounts_and_resumes(config: str) -> None:
    from sorter.runtime.line import build_line
    from sorter.runtime.loops import run_line
    from sorter.runtime.service_setup import start_service

    # the states asserted are the link's; an overloaded busy machine must not hide them behind `degraded: overloaded`
    cfg = load_config(config, ["service.http_port=0", "sim.density_per_m2=2", "sim.seed=3", "runtime.overload_degrades=false"])
    assert cfg.runtime.link_process  # on by default for an emulated controller link
    line = build_line(cfg, fast=False)
    _service, server = start_service(line, None)
    assert server is not None
    link = line.actuator.link  # type: ignore[attr-defined]
    assert isinstance(link, ProcessLink)
    summary: dict[str, Any] = {}
    stop = threading.Event()
    runner = threading.Thread(target=lambda: summary.update(run_line(line, 20.0, False, stop)), name="line")
    runner.start()
    try:
        _wait_status(server.port, lambda s: s["state"] == "running" and s["commands"]["executed"] >= 5,
                     "running with executed commands")
        pid = link.child_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        # the restart may take less than one poll of /status: the fault history keeps what the state showed
        st = _wait_status(server.port, lambda s: _link_died(s) is not None, "degraded")
        assert "process died (killed by SIGKILL), restarting" in str(_link_died(st))
        st = _wait_status(server.port, lambda s: s["state"] == "running", "running again")
        assert st["faults"]["link"] == 1 and st["reason"] == ""
        executed_at_return = st["commands"]["executed"]
        runner.join(PATIENCE_S)
        assert not runner.is_alive()
    finally:
        stop.set()
        runner.join(10.0)
        server.close()
    a = summary["actuator"]
    assert a["link_process_deaths"] == 1 and a["link_process_restarts"] == 1
    assert summary["commands_executed_late"] == 0
    assert summary["commands_executed"] > executed_at_return  # sorting resumed after the restart
    lost = summary.get("commands_lost", a["link_lost"])
    # late_sent, not late_dropped: a command the planner itself found late was never sent (a busy machine makes some)
    outcomes = (summary["commands_executed"] + summary["commands_late_sent"] + summary["commands_rejected"]
                + a.get("link_cancelled", 0) + lost)
    assert summary["commands_sent"] == outcomes + a["link_outstanding"]
