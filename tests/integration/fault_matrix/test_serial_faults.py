"""Fault matrix, serial rows: the real link against a valve controller on a real socat pseudo-terminal pair.

Each row breaks something a plant breaks (the controller restarts with its
encoder back at 0 while commands are queued, an operator re-zeroes the
encoder, the controller answers with codes or frames this host does not know,
or with garbage, the cable is pulled, the link's own thread fails, a
controller speaks protocol version 1) and asserts what must hold whatever
happens:

* every command submitted ends in exactly one outcome (executed, late,
  rejected, cancelled, lost): sent == sum of outcomes;
* nothing executes late: whatever executed switched exactly at its commanded
  count, and nothing computed in an old encoder epoch executes at all;
* the link is still alive afterwards: heartbeats continue and new commands get
  their outcomes.

The rows every controller must pass (restart with the encoder back at 0, encoder
reset, garbage and unknown types into the controller, watchdog) are in
``test_serial_fault_peers.py``, run against both the Python emulator and the
reference firmware on its emulated board; the rows here test this host against
faults only the emulator can stage (a controller sending garbage or codes from the
future, the cable, the link thread, a version-1 controller).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import serial

from firmware_bridge.cobs import cobs_encode
from firmware_bridge.codec import FrameDecoder, encode_frame
from firmware_bridge.controller import ControllerLimits, Outcome
from firmware_bridge.crc import crc16_ccitt
from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.emulators.valve_controller import ValveControllerEmulator
from firmware_bridge.host_session import SessionConfig
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import Fire, Nak, Pick, StatusRequest
from firmware_bridge.pty_pair import PtyPair
from firmware_bridge.serial_link import SerialLink
from sorter.actuate.links import OpenedLink
from sorter.errors import DeviceNotConnectedError

SPEED = 25_000.0  # counts per second: 2.5 m/s at 10 counts/mm
FINAL = ("executed", "late", "rejected", "cancelled", "lost")


def raw_frame(type_byte: int, seq: int, payload: bytes) -> bytes:
    """A frame with a good CRC whatever its type and length (what a newer or broken controller may send)."""
    head = bytes([type_byte]) + seq.to_bytes(2, "little") + payload
    return cobs_encode(head + crc16_ccitt(head).to_bytes(2, "little")) + b"\x00"


@dataclass
class Ledger:
    """The commands a row submitted and every event the link gave back for them."""

    link: SerialLink
    commands: dict[int, Fire] = field(default_factory=dict)
    events: dict[int, list[LinkEvent]] = field(default_factory=dict)
    speed_cps: float = SPEED  # the controller's encoder rate in counts per second of wall time
    valves: int = 64  # the controller's valve count (commands cycle through them)

    def count(self) -> int:
        st = self.link.request_status(2.0)
        assert st is not None, "the controller did not answer a STATUS_REQUEST"
        return st.encoder_count

    def submit_ahead(self, ids: range, lead_s: float, spacing_s: float = 0.05) -> None:
        """Commands opening ``lead_s`` ahead of the controller's count, one every ``spacing_s``."""
        n = self.count()
        for k, cid in enumerate(ids):
            o = n + round((lead_s + k * spacing_s) * self.speed_cps)
            cmd = Fire(cid, cid % self.valves, cid % self.valves, o, o + 100)
            self.commands[cid] = cmd
            self.link.submit(cmd)

    def pump(self) -> None:
        for e in self.link.poll_events():
            self.events.setdefault(e.command_id, []).append(e)

    def statuses(self, cid: int) -> list[str]:
        return [e.status for e in self.events.get(cid, [])]

    def wait(self, pred: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.pump()
            if pred():
                return
            time.sleep(0.01)
        self.pump()
        raise AssertionError(f"{what} did not happen within {timeout_s} s; link stats {self.link.stats()}")

    def wait_final(self, ids: range | list[int], timeout_s: float) -> None:
        self.wait(lambda: all(any(s in FINAL for s in self.statuses(c)) for c in ids), timeout_s, f"outcomes of {ids}")

    def wait_accepted(self, ids: range) -> None:
        self.wait(lambda: all("accepted" in self.statuses(c) for c in ids), 10.0, f"acceptance of {ids}")

    def check(self) -> Counter[str]:
        """sent == sum of outcomes (one each), executed exactly at the commanded count; returns the outcomes."""
        self.pump()
        totals: Counter[str] = Counter()
        for cid, cmd in self.commands.items():
            finals = [e for e in self.events.get(cid, []) if e.status in FINAL]
            assert len(finals) == 1, (cid, self.events.get(cid))
            totals[finals[0].status] += 1
            if finals[0].status == "executed":
                assert finals[0].open_count == cmd.open_count, (cid, finals[0])  # never late
        assert sum(totals.values()) == len(self.commands)
        return totals

    def assert_alive(self, new_ids: range) -> None:
        """Heartbeats continue and new commands get their outcomes (executed at their counts, or refused late
        if the machine stalled the test for a second: never executed late)."""
        assert self.link.wait_ready(5.0), self.link.health()
        hb = self.link.stats()["heartbeats"]
        self.submit_ahead(new_ids, lead_s=1.0)
        self.wait_final(new_ids, 10.0)
        assert all(self.statuses(c)[-1] in ("executed", "late") for c in new_ids), {c: self.statuses(c) for c in new_ids}
        assert self.link.stats()["heartbeats"] > hb
        assert self.link.health() == (True, "")


def new_link(path: str) -> SerialLink:
    link = SerialLink(path, config=SessionConfig(), reconnect_min_s=0.02, reconnect_max_s=0.2)
    link.start()
    return link


@pytest.fixture
def pty() -> Iterator[PtyPair]:
    p = PtyPair().start()
    yield p
    p.close()


@pytest.fixture
def thread_rig(pty: PtyPair) -> Iterator[tuple[Ledger, ValveControllerEmulator]]:
    device = FreeRunningDevice(64, SPEED)
    emu = ValveControllerEmulator(pty.device_path, device, ControllerLimits(queue_capacity=256)).start()
    link = new_link(pty.host_path)
    try:
        assert link.wait_ready(5.0), link.health()
        yield Ledger(link), emu
    finally:
        link.close()
        emu.stop()


def test_unknown_nak_reason_and_garbage_bytes(thread_rig: tuple[Ledger, ValveControllerEmulator]) -> None:
    ledger, emu = thread_rig
    submit = emu.core.submit

    def newer_controller(command: Fire | Pick) -> Outcome:
        if command.command_id in (3, 4):  # refused for a reason this host has never heard of
            return Outcome(False, 23, command.command_id)
        return submit(command)

    emu.core.submit = newer_controller  # type: ignore[method-assign]
    ledger.submit_ahead(range(1, 7), lead_s=1.0)
    emu.inject(b"\x17\xff\xfe" * 40 + b"\x00")  # noise
    emu.inject(b"\x01" * 300 + b"\x00")  # oversize: no delimiter for 300 bytes
    emu.inject(encode_frame(Nak(0xFFFF, 0, 9), 60001))  # WRONG_EPOCH naming no command
    emu.inject(encode_frame(Nak(0xFFFF, 0, 200), 60002))  # a reason from the future naming no command
    emu.inject(raw_frame(0x85, 60003, b"\x02" * 7))  # STATUS of a wrong length
    ledger.wait_final(range(1, 7), 10.0)
    totals = ledger.check()
    assert totals["rejected"] == 2 and totals["executed"] + totals["late"] == 4
    assert all("unknown NAK reason 23" in ledger.events[c][-1].detail for c in (3, 4))
    s = ledger.link.stats()
    assert s["nak_unknown_reason"] == 2 and s["bad_frames"] >= 3 and s["thread_errors"] == 0
    assert s["nak_unmatched"] >= 2  # the two NAKs naming no command: counted, nothing else
    ledger.assert_alive(range(20, 25))
    assert emu.thread_alive()


def test_undefined_message_types_are_counted_and_survived(thread_rig: tuple[Ledger, ValveControllerEmulator]) -> None:
    ledger, emu = thread_rig
    ledger.submit_ahead(range(1, 5), lead_s=1.0)
    for k, t in enumerate((0x88, 0x99, 0xFF, 0x10)):  # future types, and a host-to-controller type sent back
        emu.inject(raw_frame(t, 61000 + k, bytes(range(k * 5))))
    ledger.wait_final(range(1, 5), 10.0)
    totals = ledger.check()
    assert totals["executed"] + totals["late"] == 4
    s = ledger.link.stats()
    assert s["unknown_types"] == 3 and s["bad_frames"] >= 4 and s["thread_errors"] == 0
    ledger.assert_alive(range(20, 25))


def test_cable_pulled_and_back_reconciles_every_command(pty: PtyPair) -> None:
    device = FreeRunningDevice(64, SPEED)
    emu = ValveControllerEmulator(pty.device_path, device, ControllerLimits(queue_capacity=256)).start()
    ledger = Ledger(new_link(pty.host_path))
    try:
        assert ledger.link.wait_ready(5.0)
        ledger.submit_ahead(range(0, 60), lead_s=0.2, spacing_s=0.05)  # due over 3.2 s: some during the pull
        time.sleep(0.4)
        pty.stop()  # the cable is pulled: both ends vanish
        time.sleep(0.5)
        pty.start()  # and plugged back in
        ledger.wait_final(range(0, 60), 10.0)
        totals = ledger.check()
        assert totals["executed"] >= 1 and "lost" not in totals  # back within the give-up time: reconciled, not guessed
        assert ledger.link.stats()["reconnects"] >= 1
        ledger.assert_alive(range(100, 105))
    finally:
        ledger.link.close()
        emu.stop()


def test_cable_pulled_for_good_finishes_every_command_as_lost(pty: PtyPair) -> None:
    device = FreeRunningDevice(64, SPEED)
    emu = ValveControllerEmulator(pty.device_path, device, ControllerLimits(queue_capacity=256)).start()
    cfg = SessionConfig(give_up_ns=800_000_000)
    link = SerialLink(pty.host_path, config=cfg, reconnect_min_s=0.02, reconnect_max_s=0.2)
    link.start()
    ledger = Ledger(link)
    try:
        assert link.wait_ready(5.0)
        ledger.submit_ahead(range(0, 20), lead_s=5.0, spacing_s=0.1)
        ledger.wait_accepted(range(0, 20))
        pty.stop()
        ledger.wait(lambda: not link.health()[0], 2.0, "link reported down")
        assert "lost" in link.health()[1] and link.stats()["connected"] == 0
        ledger.wait_final(range(0, 20), 5.0)
        assert ledger.check() == {"lost": 20}
        pty.start()
        ledger.assert_alive(range(100, 103))
        assert device.open_valve_count() == 0
    finally:
        link.close()
        emu.stop()


def test_link_thread_failure_is_counted_reported_and_restarted(thread_rig: tuple[Ledger, ValveControllerEmulator]) -> None:
    ledger, _emu = thread_rig
    session = ledger.link.session
    poll = session.poll
    release = threading.Event()  # the link's loop fails until the test has seen it reported down
    failures = [0]

    def failing_poll(now_ns: int) -> bytes:
        if not release.is_set():
            failures[0] += 1
            raise RuntimeError("injected failure in the link thread")
        return poll(now_ns)

    ledger.submit_ahead(range(1, 6), lead_s=5.0)
    ledger.wait_accepted(range(1, 6))
    session.poll = failing_poll  # type: ignore[method-assign]
    ledger.wait(lambda: ledger.link.stats()["thread_errors"] >= 1, 10.0, "a thread error")
    ok, why = ledger.link.health()  # down while its loop keeps failing, however late this thread looks
    assert not ok and "RuntimeError" in why
    release.set()
    ledger.wait_final(range(1, 6), 10.0)
    totals = ledger.check()  # reconciled after the restarts: nothing lost
    assert totals["executed"] + totals["late"] == 5
    ledger.assert_alive(range(20, 25))
    assert ledger.link.stats()["thread_errors"] == failures[0] >= 1


def test_a_version_1_controller_is_refused_with_a_clear_error(pty: PtyPair) -> None:
    """A controller answering STATUS_REQUEST with the 42-byte version-1 STATUS: refused, never armed."""
    stop = threading.Event()
    armed: list[bytes] = []

    def v1_controller() -> None:
        port = serial.serial_for_url(pty.device_path, timeout=0.02)
        dec = FrameDecoder()
        seq = 0
        while not stop.is_set():
            for r in dec.feed(port.read(256)):
                msg = getattr(r, "message", None)
                if isinstance(msg, StatusRequest):
                    seq += 1
                    port.write(raw_frame(0x85, seq, bytes([1, 0x08]) + bytes(40)))
                elif msg is not None and type(msg).__name__ == "Arm":
                    armed.append(b"arm")
        port.close()

    peer = threading.Thread(target=v1_controller, daemon=True)
    peer.start()
    link = new_link(pty.host_path)
    try:
        assert not link.wait_ready(3.0)
        ok, why = link.health()
        assert not ok and why == "the controller speaks protocol version 1; this host needs 2: update its firmware"
        link.submit(Fire(1, 0, 0, 10**9, 10**9 + 100))
        ledger = Ledger(link, {1: Fire(1, 0, 0, 10**9, 10**9 + 100)})
        ledger.wait_final([1], 2.0)
        assert ledger.check() == {"rejected": 1}
        assert armed == [] and link.stats()["protocol_errors"] == 1 and link.stats()["connected"] == 0
        with pytest.raises(DeviceNotConnectedError, match="speaks protocol version 1; this host needs 2: update its firmware"):
            OpenedLink(link, "valve controller on the test pty", "check the cable").wait_ready_or_raise(1.0)
    finally:
        link.close()
        stop.set()
        peer.join(2.0)


def test_closing_with_commands_pending_cancels_them_on_the_controller(
    thread_rig: tuple[Ledger, ValveControllerEmulator],
) -> None:
    ledger, emu = thread_rig
    ledger.submit_ahead(range(1, 6), lead_s=5.0)
    ledger.wait_accepted(range(1, 6))
    ledger.link.close()  # DISARM acknowledged: the controller dropped them, they never run
    assert ledger.check() == {"cancelled": 5}
    assert not emu.core.armed and emu.core.queue_len() == 0
