"""The controller link in its own process, against the real emulators, killed and restarted.

Each row is a real peer: the valve-controller emulator behind a socat pseudo-terminal
(serial) or the PLC emulator's pymodbus server on loopback TCP (Modbus). The link runs
in a spawned child process; the test kills that process with SIGKILL and checks what a
plant needs: the line hears it at once, every command in flight ends as ``lost``
(``sent`` equals the sum of outcomes), the link comes back by itself, new commands are
executed, and nothing is ever executed late.
"""

from __future__ import annotations

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

    def __init__(self, kind: str) -> None:
        cfg = load_config(None, [f"actuator.type={kind}"])
        self.peer: EmulatorPeer = start_emulator(cfg.actuator, kind, FreeRunningDevice(8, SPEED_COUNTS_PER_S),
                                                 simulation_limits(80.0))
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

    def close(self) -> None:
        try:
            self.link.close()
        finally:
            self.peer.stop()


@pytest.fixture(params=["serial", "modbus"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    r = Rig(request.param)
    try:
        r.link.start()
        assert r.link.wait_ready(PATIENCE_S), f"{r.link.where} never got ready"
        yield r
    finally:
        r.close()


def test_commands_cross_the_process_boundary_and_a_killed_link_loses_only_what_was_in_flight(rig: Rig) -> None:
    link = rig.link
    assert link.priority  # the child said at which priority it runs (raised, or normal and why)
    rig.execute(5)

    in_flight = rig.submit(6, 60 * int(SPEED_COUNTS_PER_S))  # a minute ahead: still queued when the link dies
    rig.wait(lambda: all(rig.events.get(c) for c in in_flight), "the controller accepting the queued commands")
    pid = link.child_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    rig.wait(lambda: bool(rig.health), "the health listener hearing of the death")
    assert rig.health[0] == "process died (killed by SIGKILL), restarting"
    rig.wait_final(in_flight)
    for c in in_flight:
        (final,) = rig.finals(c)
        assert final.status == LOST and "killed by SIGKILL" in final.detail

    assert link.wait_ready(PATIENCE_S)
    rig.wait(lambda: rig.health[-1] is None, "the health listener hearing the link is back")
    assert link.health() is None and link.child_pid() not in (None, pid)
    rig.execute(5)  # the restarted link executes new commands

    rig.poll()
    stats = link.stats()
    assert stats["process_deaths"] == 1 and stats["process_restarts"] == 1 and stats["lost"] == 6
    for cid in rig.wanted:  # exactly one outcome per command, and no execution past its position
        (final,) = rig.finals(cid)
        if final.status == "executed":
            assert final.open_count is not None and final.open_count - rig.wanted[cid] <= TOLERANCE_COUNTS
    outcomes: list[str] = [rig.finals(c)[0].status for c in rig.wanted]
    assert outcomes.count(LOST) == 6 and all(rig.finals(c)[0].status == LOST for c in in_flight)
    assert link.balanced() and stats["outstanding"] == 0
    core = rig.peer.emulator.core
    assert core.counters.executed == outcomes.count("executed")  # the lost commands were dropped, never fired


def test_commands_submitted_while_the_link_is_down_are_lost_at_once_not_queued(rig: Rig) -> None:
    link = rig.link
    rig.count_now()
    pid = link.child_pid()
    assert pid is not None
    stopped = threading.Event()

    def submit_while_down() -> None:
        while link.child_pid() is not None and not stopped.is_set():
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
    rig.wait(lambda: all(rig.events.get(c) for c in queued), "the controller accepting the queued commands")
    pid = link.child_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive but silent: a hung process
    rig.wait(lambda: bool(rig.health), "the health listener hearing of the hang")
    assert rig.health[0] == f"process died (stopped answering for {HANG_S:g} s), restarting"
    rig.wait_final(queued)
    assert {rig.finals(c)[0].status for c in queued} == {LOST}
    assert link.wait_ready(PATIENCE_S) and link.child_pid() not in (None, pid)
    rig.execute(3)
    assert link.balanced()


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

    cfg = load_config(config, ["service.http_port=0", "sim.density_per_m2=2", "sim.seed=3"])
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
    outcomes = (summary["commands_executed"] + summary["commands_late_dropped"] + summary["commands_rejected"]
                + a.get("link_cancelled", 0) + lost)
    assert summary["commands_sent"] == outcomes + a["link_outstanding"]
