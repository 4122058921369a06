"""Serial link against the valve-controller emulator through a real socat pseudo-terminal pair.

Faults: the port removed and restored mid-run, a hung host (no heartbeats),
corrupted and truncated frames injected on the line in both directions, and a
flood of 10,000 commands. In every case each command gets exactly one final
answer, whatever executed did so at its commanded count (never late), and no
valve is left open.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from firmware_bridge.controller import ControllerLimits
from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.emulators.valve_controller import ValveControllerEmulator
from firmware_bridge.host_session import SessionConfig
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import FaultCode, Fire
from firmware_bridge.pty_pair import PtyPair
from firmware_bridge.serial_link import SerialLink

SPEED = 25_000.0  # counts per second: 2.5 m/s at 10 counts/mm
FINAL = ("executed", "late", "rejected", "cancelled")


@dataclass
class Rig:
    pty: PtyPair
    device: FreeRunningDevice
    emu: ValveControllerEmulator
    link: SerialLink

    def count(self) -> int:
        return self.device.encoder_count()

    def wait_count(self, count: int) -> int:
        """Wait until the belt has reached ``count`` (the encoder runs on wall time: never long); the count then."""
        deadline = time.monotonic() + (count - self.count()) / SPEED + 10.0
        while (now := self.count()) < count:
            assert time.monotonic() < deadline, f"the encoder stopped at {now} before {count}"
            time.sleep(0.002)
        return now

    def wait_final(self, cids: set[int], timeout_s: float) -> dict[int, list[LinkEvent]]:
        events: dict[int, list[LinkEvent]] = {}
        open_ids = set(cids)
        deadline = time.monotonic() + timeout_s
        while open_ids and time.monotonic() < deadline:
            for e in self.link.poll_events():
                events.setdefault(e.command_id, []).append(e)
                if e.status in FINAL:
                    open_ids.discard(e.command_id)
            time.sleep(0.01)
        return events


@pytest.fixture
def rig() -> Iterator[Rig]:
    pty = PtyPair().start()
    device = FreeRunningDevice(64, SPEED)
    emu = ValveControllerEmulator(pty.device_path, device, ControllerLimits(queue_capacity=256)).start()
    # the host never gives up on a port lost for a while here (the outages below are counted in belt travel,
    # not time, and a loaded machine may stretch them): the give-up rule has its own test in the fault matrix
    link = SerialLink(pty.host_path, config=SessionConfig(give_up_ns=60_000_000_000), reconnect_min_s=0.02,
                      reconnect_max_s=0.2)
    link.start()
    assert link.wait_ready(3.0), "the link did not arm the emulated controller"
    r = Rig(pty, device, emu, link)
    yield r
    link.close()
    emu.stop()
    pty.close()


def check_invariants(rig: Rig, commands: dict[int, Fire], events: dict[int, list[LinkEvent]]) -> dict[str, int]:
    """One final answer per command; executed exactly at the commanded count; valves closed."""
    totals = {s: 0 for s in FINAL}
    for cid, cmd in commands.items():
        finals = [e for e in events.get(cid, []) if e.status in FINAL]
        assert len(finals) == 1, (cid, events.get(cid))
        f = finals[0]
        totals[f.status] += 1
        if f.status == "executed":
            assert f.open_count == cmd.open_count  # switched on its count: never late
    rig.emu.core.tick(time.monotonic_ns())
    assert rig.device.open_valve_count() == 0
    return totals


def test_fire_late_and_bad_fields_over_a_real_pty(rig: Rig) -> None:
    n = rig.count()
    cmds = {
        1: Fire(1, 0, 3, n + 2500, n + 2800),
        2: Fire(2, 0, 0, n - 10, n + 100),
        3: Fire(3, 60, 70, n + 3000, n + 3100),
    }
    for c in cmds.values():
        rig.link.submit(c)
    assert rig.link.wait_idle(5.0)
    ev = rig.wait_final(set(cmds), 2.0)
    assert [e.status for e in ev[1]] == ["accepted", "executed"]
    assert [e.status for e in ev[2]] == ["late"]
    assert [e.status for e in ev[3]] == ["rejected"]
    check_invariants(rig, cmds, ev)
    st = rig.link.request_status()
    assert st is not None and st.executed == 1 and st.valve_count == 64
    assert rig.link.ping() and rig.link.sync.best() is not None


def test_port_removed_and_restored_mid_run(rig: Rig) -> None:
    """Unplugged with commands queued on the controller: its watchdog closes the valves and drops them; once
    plugged back in, the host re-arms and resends. Each command ends once, what ran did so at its count, and
    whatever position passed while the controller was alone is refused late, never fired. The expectations
    come from encoder counts read at the unplug, the trip and the replug, not from how long anything took."""
    n = rig.count()
    cmds = {i: Fire(i, i % 64, i % 64, n + 5000 + 500 * i, n + 5100 + 500 * i) for i in range(60)}  # 1.2 s of belt
    for c in cmds.values():
        rig.link.submit(c)
    assert rig.link.wait_idle(5.0)
    rig.wait_count(cmds[9].close_count)  # the first ten had their turn
    trips = rig.emu.core.counters.watchdog_trips
    rig.pty.stop()  # unplugged: both ends disappear
    deadline = time.monotonic() + 10.0
    while rig.emu.core.armed or rig.emu.core.counters.watchdog_trips == trips:  # alone: the watchdog trips
        assert time.monotonic() < deadline, "the controller's watchdog did not trip with its host unplugged"
        time.sleep(0.002)
    n_trip = rig.count()  # disarmed by now, queue dropped, and nothing can re-arm it until the replug
    n_replug = rig.wait_count(max(cmds[39].close_count, n_trip + 5000))  # 20 more positions pass meanwhile
    rig.pty.start()  # plugged back in at the same path
    ev = rig.wait_final(set(cmds), 10.0)
    totals = check_invariants(rig, cmds, ev)  # one final answer each; executed ones exactly at their count
    assert sum(totals.values()) == len(cmds)
    assert rig.link.stats()["reconnects"] >= 1
    assert rig.emu.core.counters.watchdog_trips > trips  # the outage cost a watchdog trip
    alone = [i for i, c in cmds.items() if n_trip < c.open_count <= n_replug]
    finals = {i: next(e.status for e in ev[i] if e.status in FINAL) for i in cmds}
    assert all(finals[i] == "late" for i in alone), {i: finals[i] for i in alone}
    assert totals["late"] >= len(alone)
    # on a quiet machine about twenty fall into the outage; a busy one may have passed them all before the unplug
    assert all(cmds[i].open_count <= n_trip or cmds[i].open_count > n_replug for i, s in finals.items() if s == "executed")


def test_hung_host_watchdog_closes_valves_within_100_ms(rig: Rig) -> None:
    n = rig.count()
    rig.link.submit(Fire(1, 0, 63, n + 500, n + 500_000))  # a very long pulse (clamped at 200 ms)
    assert rig.link.wait_idle(5.0)
    while rig.device.open_valve_count() == 0:
        time.sleep(0.001)
    rig.link.session.arm_enabled = False  # the host hangs: no more heartbeats
    t_last_hb = rig.emu.core._last_heartbeat_ns
    while rig.device.open_valve_count() > 0:
        time.sleep(0.0005)
    closed_after_ms = (time.monotonic_ns() - t_last_hb) / 1e6
    assert rig.emu.core.fault == FaultCode.WATCHDOG
    # the spec: closed 100 ms after the last heartbeat (+ one emulator tick and this loop's polling)
    assert 99.0 <= closed_after_ms <= 100.0 + 60.0, closed_after_ms


def _inject(path: str, stop: threading.Event, rng: random.Random, wrote: list[int]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
    try:
        while not stop.is_set():
            kind = rng.random()
            if kind < 0.4:
                junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
            elif kind < 0.7:
                junk = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(3, 20))) + b"\x00"  # a bad frame
            else:
                junk = b"\x05\x10\x01\x00"  # a truncated frame
            os.write(fd, junk)
            wrote[0] += len(junk)
            time.sleep(rng.uniform(0.01, 0.05))
    finally:
        os.close(fd)


def test_corrupted_and_truncated_frames_in_both_directions(rig: Rig) -> None:
    stop = threading.Event()
    wrote = [0, 0]
    rng = random.Random(7)
    to_ctrl = threading.Thread(target=_inject, args=(rig.pty.host_path, stop, rng, wrote[0:1]))
    to_host = threading.Thread(target=_inject, args=(rig.pty.device_path, stop, random.Random(8), wrote[1:2]))
    to_ctrl.start()
    to_host.start()
    try:
        n = rig.count()
        cmds = {i: Fire(i, i % 64, i % 64, n + 4000 + 250 * i, n + 4100 + 250 * i) for i in range(80)}
        for c in cmds.values():
            rig.link.submit(c)
            time.sleep(0.002)
        ev = rig.wait_final(set(cmds), 4.0)
    finally:
        stop.set()
        to_ctrl.join()
        to_host.join()
    totals = check_invariants(rig, cmds, ev)
    assert rig.emu.core.counters.bad_frames > 10
    assert rig.link.stats()["bad_frames"] > 10
    # retransmission recovers most of what the noise destroyed; a watchdog trip (heartbeats lost to the
    # noise) is allowed: it closes the valves, and what it dropped is resent or refused as late
    assert totals["executed"] >= 40
    assert rig.emu.thread_alive() and rig.link.stats()["connected"] == 1


def test_flood_of_10000_commands_queue_full_and_backoff(rig: Rig) -> None:
    n = rig.count()
    # all three seconds ahead (time enough for the first 256 to reach the controller on a busy machine), one count
    # apart: far more than the controller's 256 queue slots
    cmds = {i: Fire(i, i % 64, i % 64, n + 75_000 + i, n + 75_003 + i) for i in range(10_000)}
    t0 = time.monotonic()
    for c in cmds.values():
        rig.link.submit(c)
    submit_s = time.monotonic() - t0
    ev = rig.wait_final(set(cmds), 30.0)
    totals = check_invariants(rig, cmds, ev)
    s = rig.link.stats()
    assert sum(totals.values()) == 10_000
    assert s["nak_queue_full"] > 0 and s["backoffs"] > 0
    assert rig.emu.core.counters.queue_full > 0
    assert totals["executed"] >= 256
    assert submit_s < 2.0  # submit only queues: it never waits for the link
