"""Fault matrix, Modbus rows: a real pymodbus PLC emulator on loopback, behind a Modbus/TCP fault proxy.

Each row runs commands through the fault and asserts what a plant needs:

* every command submitted ends in exactly one outcome, and the link's own books agree
  (``submitted == executed + late + rejected + cancelled + lost``);
* nothing executes late: each execution is checked on the belt's own (never re-zeroed) encoder
  against the position the command was meant for, so a command of an old epoch run in a new
  one would show up;
* the link reports itself down within 1 s of the fault and up within 5 s of the recovery;
* the link is alive afterwards: new commands get executed.
"""

from __future__ import annotations

import csv
import gc
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from firmware_bridge.controller import ControllerLimits
from firmware_bridge.device import Execution, FreeRunningDevice
from firmware_bridge.emulators.plc import PlcEmulator
from firmware_bridge.emulators.tcp_fault_proxy import (
    ModbusFaultProxy,
    exception_reply,
    garbage_reply,
    raw_reply,
    short_read_reply,
)
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import Fire
from firmware_bridge.modbus_io import SERVER_EXCEPTION_CODES
from firmware_bridge.modbus_link import ModbusLink, ModbusLinkConfig

SPEED = 25_000.0  # counts/s
FINAL = ("executed", "late", "rejected", "cancelled", "lost")
DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "modbus"


class RecordingBelt(FreeRunningDevice):
    """The belt and valve bank: keeps every execution in its own encoder count, which no PLC reset touches."""

    def __init__(self) -> None:
        super().__init__(64, SPEED)
        self.executions: dict[int, Execution] = {}

    def poll_executed(self) -> list[Execution]:
        done = super().poll_executed()
        for e in done:
            self.executions.setdefault(e.command_id, e)
        return done


class HealthWatch:
    """Samples ``link.health().up`` every 5 ms in a thread; answers when it first changed after a time."""

    def __init__(self, link: ModbusLink) -> None:
        self.link = link
        self.samples: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.link.health().up))
            time.sleep(0.005)

    def first(self, up: bool, after: float) -> float | None:
        """Seconds from ``after`` to the first sample with this state (None: never)."""
        return next((t - after for t, u in list(self.samples) if t >= after and u == up), None)

    def wait(self, up: bool, after: float, timeout_s: float) -> float | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dt = self.first(up, after)
            if dt is not None:
                return dt
            time.sleep(0.01)
        return self.first(up, after)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


@dataclass
class Line:
    belt: RecordingBelt
    plc: PlcEmulator
    proxy: ModbusFaultProxy
    link: ModbusLink
    watch: HealthWatch
    intended_abs: dict[int, int] = field(default_factory=dict)  # command id -> open count on the belt's encoder
    events: dict[int, list[LinkEvent]] = field(default_factory=dict)
    next_id: int = 1

    def submit(self, n: int, lead_s: float, spacing_s: float = 0.02) -> set[int]:
        """``n`` commands opening ``lead_s`` ahead (and ``spacing_s`` apart), in the PLC's current count."""
        ids: set[int] = set()
        count, offset = self.plc.encoder_count(), self.plc.plc.device.offset
        for k in range(n):
            cid = self.next_id
            self.next_id += 1
            open_count = count + int((lead_s + k * spacing_s) * SPEED)
            self.intended_abs[cid] = open_count + offset
            self.link.submit(Fire(cid, cid % 64, cid % 64, open_count, open_count + 50))
            ids.add(cid)
        return ids

    def collect(self) -> None:
        for e in self.link.poll_events():
            self.events.setdefault(e.command_id, []).append(e)

    def finals(self, cid: int) -> list[LinkEvent]:
        return [e for e in self.events.get(cid, []) if e.status in FINAL]

    def wait_final(self, ids: set[int], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.collect()
            if all(self.finals(c) for c in ids):
                return
            time.sleep(0.01)
        self.collect()

    def check(self) -> dict[str, int]:
        """One outcome per command, the books balance, nothing ran late; returns the outcome totals."""
        self.wait_final(set(self.intended_abs), 10.0)
        totals = dict.fromkeys(FINAL, 0)
        for cid in self.intended_abs:
            finals = self.finals(cid)
            assert len(finals) == 1, (cid, self.events.get(cid))
            totals[finals[0].status] += 1
        assert sum(totals.values()) == len(self.intended_abs)  # sent == sum(outcomes)
        s = self.link.stats()
        assert s["submitted"] == len(self.intended_abs) and s["outstanding"] == 0
        assert s["submitted"] == sum(s[k] for k in FINAL)
        self.plc.plc.tick()
        executed_late = [
            cid for cid, e in self.belt.executions.items() if cid in self.intended_abs and e.open_count > self.intended_abs[cid]
        ]
        assert executed_late == []
        for cid in self.belt.executions:  # what the belt ran is reported executed, or lost when it cannot be known
            if cid in self.intended_abs:  # (a PLC that restarts before reporting an execution has forgotten it)
                assert self.finals(cid)[0].status in ("executed", "lost"), (cid, self.events.get(cid))
        assert self.belt.open_valve_count() == 0
        return totals

    def still_works(self) -> None:
        """New commands get their outcome and run (one late under a heavy load is an outcome too)."""
        ids = self.submit(5, 1.0)
        self.wait_final(ids, 5.0)
        statuses = [self.finals(c)[0].status for c in sorted(ids)]
        assert set(statuses) <= {"executed", "late"} and "executed" in statuses, (statuses, self.link.stats())


@pytest.fixture
def line() -> Iterator[Line]:
    gc.collect()
    gc.freeze()  # as the service does: no full-collection pauses past the PLC's 100 ms watchdog
    belt = RecordingBelt()
    plc = PlcEmulator(belt, ControllerLimits(queue_capacity=64)).start()
    proxy = ModbusFaultProxy("127.0.0.1", plc.port).start()
    link = ModbusLink(
        "tcp", "127.0.0.1", proxy.port, timeout_ms=100, config=ModbusLinkConfig(reconnect_min_ms=20, reconnect_max_ms=200)
    )
    link.start()
    assert link.wait_ready(5.0)
    watch = HealthWatch(link)
    assert watch.wait(True, 0.0, 5.0) is not None
    ln = Line(belt, plc, proxy, link, watch)
    yield ln
    watch.stop()
    link.close()
    proxy.stop()
    plc.stop()
    gc.unfreeze()


def _down_then_up(line: Line, t_fault: float, t_recovered: float | None = None) -> None:
    down_s = line.watch.wait(False, t_fault, 2.0)
    assert down_s is not None and down_s <= 1.0, down_s
    t_back = t_recovered if t_recovered is not None else t_fault + down_s
    up_s = line.watch.wait(True, t_back, 6.0)
    assert up_s is not None and up_s <= 5.0, up_s


def _never_reached_the_new_epoch(line: Line, ids: set[int]) -> None:
    core = line.plc.core
    assert [c for c in ids if core.is_pending(c) or core.execution_of(c) is not None] == []


def test_plc_restart_with_encoder_reset_while_commands_pending(line: Line) -> None:
    early = line.submit(20, 3.0)  # due 3 s from now: in the old count, 75,000 counts ahead of the new one
    assert line.link.wait_idle(5.0)
    t_fault = time.monotonic()
    line.plc.restart(down_s=0.3)  # new boot id, count from 0, slots empty, disarmed
    t_back = time.monotonic()
    _down_then_up(line, t_fault, t_back)
    line.wait_final(early, 5.0)
    assert {line.finals(c)[0].status for c in early} == {"lost"}
    assert line.link.stats()["plc_restarts"] == 1
    _never_reached_the_new_epoch(line, early)
    line.still_works()
    assert line.check()["lost"] == 20


def test_encoder_reset_while_commands_pending(line: Line) -> None:
    early = line.submit(20, 3.0)
    assert line.link.wait_idle(5.0)
    t_fault = time.monotonic()
    line.plc.reset_encoder()  # same boot, count re-zeroed, epoch 2: the queued slots are dropped with reason 9
    _down_then_up(line, t_fault)
    line.wait_final(early, 5.0)
    assert {line.finals(c)[0].status for c in early} == {"lost"}
    assert line.link.stats()["epoch_changes"] == 1
    _never_reached_the_new_epoch(line, early)
    line.still_works()
    assert line.check()["lost"] == 20


@pytest.mark.parametrize("code", range(1, 12))
def test_every_modbus_exception_code(line: Line, code: int) -> None:
    pending = line.submit(10, 0.8)
    assert line.link.wait_idle(5.0)
    t_fault = time.monotonic()
    if code in SERVER_EXCEPTION_CODES:
        line.plc.inject_exceptions(code, 3)  # the PLC program answers the next 3 requests with it
    else:  # 9 is not a standard code: no server sends it, a broken gateway might
        line.proxy.answer_next(exception_reply(code), 3)
    if code != 6:  # 6 to a command write is the PLC's "queue full": flow control (back off), not a link fault
        line.submit(5, 0.8)  # written into the fault
    _down_then_up(line, t_fault)
    s = line.link.stats()
    assert s[f"exception_{code}"] >= 1 and s["exceptions"] >= 1
    line.wait_final(pending, 5.0)
    line.still_works()
    line.check()


def _capture_frame(capture: str, frame: int) -> bytes:
    path = DATA / "reference_decodes" / f"{capture}.tshark.tsv"
    if not path.exists():
        pytest.fail(f"Modbus test data missing: {path} (see ../shared/data/MANIFEST.md)")
    with path.open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["frame.number"] == str(frame):
                return bytes.fromhex(row["tcp.payload"])
    raise AssertionError(f"frame {frame} not in {path}")


def test_a_real_exception_frame_from_a_capture(line: Line) -> None:
    # Digital Bond's test capture, frame 9: unit 10 answers function 8 with exception 11 (gateway target failed)
    frame = _capture_frame("modbus_test_data_part1", 9)
    assert frame.hex() == "0000000000030a880b"
    pending = line.submit(10, 0.8)
    assert line.link.wait_idle(5.0)
    t_fault = time.monotonic()
    line.proxy.answer_next(raw_reply(frame), 2)
    _down_then_up(line, t_fault)
    assert line.proxy.faulted == 2
    line.wait_final(pending, 5.0)
    line.still_works()
    line.check()


@pytest.mark.parametrize("kind", ["garbage", "short"])
def test_garbage_and_short_replies(line: Line, kind: str) -> None:
    pending = line.submit(10, 0.8)
    assert line.link.wait_idle(5.0)
    t_fault = time.monotonic()
    line.proxy.answer_next(garbage_reply() if kind == "garbage" else short_read_reply(), 2)
    _down_then_up(line, t_fault)
    s = line.link.stats()
    assert s["timeouts"] >= 1 and s["reconnects"] >= 1
    line.wait_final(pending, 5.0)
    line.still_works()
    line.check()


def test_plc_paused_two_seconds(line: Line) -> None:
    pending = line.submit(20, 0.5, spacing_s=0.15)  # some come due while the PLC does not answer
    assert line.link.wait_idle(5.0)
    t_fault = time.monotonic()
    line.plc.pause(2.0)
    _down_then_up(line, t_fault, t_fault + 2.0)
    line.wait_final(pending, 5.0)
    assert line.link.stats()["timeouts"] >= 1
    line.still_works()
    totals = line.check()
    assert totals["executed"] + totals["late"] == 25


def test_link_thread_error_is_caught_reported_and_survived(line: Line) -> None:
    pending = line.submit(10, 0.8)
    perform = line.link._perform
    fail = {"left": 1}

    def broken(tx: object) -> list[int]:
        if fail["left"] > 0:
            fail["left"] -= 1
            raise RuntimeError("injected fault in the link loop")
        return perform(tx)  # type: ignore[arg-type]

    t_fault = time.monotonic()
    line.link._perform = broken  # type: ignore[method-assign]
    _down_then_up(line, t_fault)
    assert line.link.stats()["link_errors"] == 1 and line.link.health().thread_alive
    line.wait_final(pending, 5.0)
    line.still_works()
    line.check()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the injected thread death
def test_link_thread_killed_is_restarted(line: Line) -> None:
    pending = line.submit(10, 0.8)
    perform = line.link._perform
    fail = {"left": 1}

    def killer(tx: object) -> list[int]:
        if fail["left"] > 0:
            fail["left"] -= 1
            raise SystemExit("injected: the link thread dies")
        return perform(tx)  # type: ignore[arg-type]

    t_fault = time.monotonic()
    line.link._perform = killer  # type: ignore[method-assign]
    _down_then_up(line, t_fault)
    assert line.link.stats()["thread_restarts"] == 1 and line.link.health().thread_alive
    line.wait_final(pending, 5.0)
    line.still_works()
    line.check()
