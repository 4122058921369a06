"""Fault matrix, both link types: the controller's count jumps forward further than the belt can move.

An encoder glitch, a counter overwritten by a PLC program, a controller that
skips ahead: the count leaps by seconds of belt at once and the controller does
not start a new epoch. The bound comes from the configuration
(``belt.max_speed_mm_s`` x the link's counts per mm x a margin,
``sorter.actuate.links.link_max_counts_per_s``) and reaches the link through
``open_link``, or through the link's own process. Each row runs the real link
against the real emulator (socat pseudo-terminal for serial, pymodbus on
loopback TCP for Modbus) and asserts:

* at the nominal speed the bound never trips (commands before the jump execute);
* the commands pending when the count jumped end ``lost`` and the controller no
  longer holds them (cancelled there): none executes, late or otherwise;
* every command sent has exactly one outcome (``sent == sum of outcomes``);
* the link re-synchronises and executes new commands at their counts.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from firmware_bridge.controller import ControllerCore
from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import Fire
from firmware_bridge.modbus_link import ModbusLink
from firmware_bridge.serial_link import SerialLink
from sorter.actuate.link_ledger import NOT_FINAL, Backoff
from sorter.actuate.link_process import ProcessLink
from sorter.actuate.links import link_max_counts_per_s, link_where, open_link, simulation_limits, start_emulator
from sorter.config import load_config

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")

SPEED_COUNTS_PER_S = 25_000.0  # 2.5 m/s at 10 counts/mm: the configured nominal speed
JUMP_COUNTS = 50_000  # 2 s of belt in an instant (the bound allows about 10,000 between two readings)
PATIENCE_S = 60.0  # a spawned link process imports for seconds on a busy machine: behaviour, not speed


@dataclass
class Row:
    """A link against an emulator whose encoder is ``device``, and what the link said about each command."""

    link: SerialLink | ModbusLink | ProcessLink
    core: Callable[[], ControllerCore]
    device: FreeRunningDevice
    commands: dict[int, Fire] = field(default_factory=dict)
    events: dict[int, list[LinkEvent]] = field(default_factory=dict)

    def finals(self, cid: int) -> list[LinkEvent]:
        return [e for e in self.events.get(cid, []) if e.status not in NOT_FINAL]

    def wait(self, done: Callable[[], bool], what: str) -> None:
        t_end = time.monotonic() + PATIENCE_S
        while True:
            for e in self.link.poll_events():
                self.events.setdefault(e.command_id, []).append(e)
            if done():
                return
            assert time.monotonic() < t_end, f"{what} never happened; events {self.events}, stats {self.link.stats()}"
            time.sleep(0.01)

    def submit(self, n: int, lead_s: float) -> list[int]:
        """``n`` commands opening ``lead_s`` ahead of the controller's count, 50 ms apart."""
        base = self.device.encoder_count() + round(lead_s * SPEED_COUNTS_PER_S)
        ids = []
        for k in range(n):
            cid = len(self.commands) + 1
            o = base + k * 1250
            self.commands[cid] = Fire(cid, k % 8, k % 8, o, o + 100)
            self.link.submit(self.commands[cid])
            ids.append(cid)
        return ids

    def execute(self, n: int) -> list[int]:
        """Batches 1 s ahead until one executes (a machine too busy for the emulator may trip its watchdog, and
        commands submitted while the link re-synchronises are lost at once)."""
        ids: list[int] = []
        for _ in range(5):
            assert self.link.wait_ready(PATIENCE_S), self.link.health()
            time.sleep(0.3)  # longer than the serial link's hold after an epoch change
            batch = self.submit(n, 1.0)
            self.wait(lambda b=batch: all(self.finals(c) for c in b), f"outcomes of {batch}")  # type: ignore[misc]
            ids += batch
            if any(self.finals(c)[0].status == "executed" for c in batch):
                return ids
        raise AssertionError(f"nothing executed in 5 batches: {[self.finals(c) for c in ids]}")

    def outcomes(self) -> Counter[str]:
        """One outcome per command sent (asserted); executions exactly at their commanded counts."""
        totals: Counter[str] = Counter()
        for cid, cmd in self.commands.items():
            finals = self.finals(cid)
            assert len(finals) == 1, (cid, self.events.get(cid))
            totals[finals[0].status] += 1
            if finals[0].status == "executed":
                assert finals[0].open_count == cmd.open_count, (cid, finals[0])
        assert sum(totals.values()) == len(self.commands)
        return totals


@pytest.fixture(params=[("serial", False), ("modbus", False), ("serial", True), ("modbus", True)],
                ids=["serial", "modbus", "serial-process", "modbus-process"])
def row(request: pytest.FixtureRequest) -> Iterator[Row]:
    kind, in_process = request.param
    cfg = load_config(None, [f"actuator.type={kind}", "belt.nominal_speed_mm_s=2500", "belt.encoder_counts_per_mm=10"])
    rate = link_max_counts_per_s(cfg)
    assert rate == pytest.approx(46_875.0)  # 1.25 x 2500 mm/s x 10 counts/mm x 1.5
    device = FreeRunningDevice(8, SPEED_COUNTS_PER_S)
    link: SerialLink | ModbusLink | ProcessLink
    emulator: Any
    if in_process:
        peer = start_emulator(cfg.actuator, kind, device, simulation_limits(80.0))
        where, _ = link_where(peer.actuator, kind, emulated=True)
        link = ProcessLink(peer.actuator, kind, where, max_counts_per_s=rate, backoff=Backoff(min_s=0.05, max_s=0.5))
        emulator, stop = peer.emulator, peer.stop
        link.start()
    else:
        opened = open_link(cfg.actuator, emulate=device, limits=simulation_limits(80.0), max_counts_per_s=rate)
        link, emulator, stop = opened.link, opened.emulator, opened.stop_emulator
    try:
        assert link.wait_ready(PATIENCE_S), f"{kind} link never got ready: {link.health()}"
        yield Row(link, lambda: emulator.core, device)
    finally:
        try:
            link.close()
        finally:
            stop()


def test_a_forward_jump_beyond_the_belt_loses_the_pending_commands_and_the_link_resumes(row: Row) -> None:
    before = row.execute(3)  # the belt at its nominal speed never trips the bound
    pending = row.submit(8, lead_s=4.0)  # 100,000 counts ahead: still ahead after the jump
    row.wait(lambda: all(any(e.status == "accepted" for e in row.events.get(c, [])) for c in pending), "acceptance")
    row.device.set_count(row.device.encoder_count() + JUMP_COUNTS)  # the controller does not notice; the host must
    row.wait(lambda: all(row.finals(c) for c in pending), "outcomes of the pending commands")
    assert {row.finals(c)[0].status for c in pending} == {"lost"}, [row.finals(c)[0] for c in pending]
    assert all("more than the belt can move" in row.finals(c)[0].detail or "jumped" in row.finals(c)[0].detail
               for c in pending), [row.finals(c)[0].detail for c in pending]

    def changes() -> int:  # a link process forwards its counters just after the events
        stats = row.link.stats()
        return stats.get("epoch_changes", 0) + stats.get("count_jumps", 0)

    row.wait(lambda: changes() >= 1, "the epoch change in the link's counters")
    core = row.core()
    row.wait(lambda: not any(core.is_pending(c) for c in pending), "the controller dropping the lost commands")
    after = row.execute(3)  # re-synchronised: new commands in the jumped count execute at their counts
    assert all(core.execution_of(c) is None for c in pending)  # none of the lost ones ever ran
    assert changes() == 1, row.link.stats()  # one jump, and no false one at the belt's speed before or after
    totals = row.outcomes()
    assert totals["lost"] == len(pending) and totals["executed"] >= 2
    assert sum(totals.values()) == len(before) + len(pending) + len(after)
