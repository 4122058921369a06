"""Modbus link against the PLC emulator: a real pymodbus server on a free loopback port (and RTU over a pty).

Faults: the server stopped and restarted (same PLC, and a fresh PLC that lost
its memory), a hung host (no heartbeat), garbage and truncated frames sent to
the server, a flood of 10,000 commands. Every command gets exactly one final
answer, what executed did so at its commanded count, no valve is left open.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from firmware_bridge import registers as rmap
from firmware_bridge.controller import ControllerLimits
from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.emulators.plc import PlcEmulator
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import FaultCode, Fire, StatusFlags
from firmware_bridge.modbus_link import ModbusLink, ModbusLinkConfig
from firmware_bridge.modbus_wire import build_mbap, parse_mbap_stream
from firmware_bridge.pty_pair import PtyPair

SPEED = 25_000.0
FINAL = ("executed", "late", "rejected", "cancelled", "lost")


@dataclass
class Rig:
    device: FreeRunningDevice
    plc: PlcEmulator
    link: ModbusLink

    def count(self) -> int:
        return self.device.encoder_count()

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
    # As the service does once started (sorter.runtime.loops.run_line): the objects already alive (here the whole
    # test session's imports, 250k objects) are left out of full collections, whose pauses would otherwise stop the
    # link's heartbeat thread past the PLC's 100 ms watchdog.
    gc.collect()
    gc.freeze()
    device = FreeRunningDevice(64, SPEED)
    plc = PlcEmulator(device, ControllerLimits(queue_capacity=32)).start()  # fewer pulses than slots
    link = ModbusLink(
        "tcp", "127.0.0.1", plc.port, timeout_ms=50, config=ModbusLinkConfig(reconnect_min_ms=20, reconnect_max_ms=200)
    )
    link.start()
    assert link.wait_ready(3.0)
    r = Rig(device, plc, link)
    yield r
    link.close()
    plc.stop()


def check_invariants(rig: Rig, commands: dict[int, Fire], events: dict[int, list[LinkEvent]]) -> dict[str, int]:
    totals = {s: 0 for s in FINAL}
    for cid, cmd in commands.items():
        finals = [e for e in events.get(cid, []) if e.status in FINAL]
        assert len(finals) == 1, (cid, events.get(cid))
        totals[finals[0].status] += 1
        if finals[0].status == "executed":
            assert finals[0].open_count == cmd.open_count
    rig.plc.plc.tick()
    assert rig.device.open_valve_count() == 0
    return totals


def test_fire_late_and_bad_fields_over_tcp(rig: Rig) -> None:
    n = rig.count()
    cmds = {70: Fire(70, 0, 3, n + 2500, n + 2800), 71: Fire(71, 0, 0, n - 10, n + 100), 72: Fire(72, 60, 70, n + 3000, n + 3100)}
    for c in cmds.values():
        rig.link.submit(c)
    assert rig.link.wait_idle(5.0)
    ev = rig.wait_final(set(cmds), 2.0)
    assert [e.status for e in ev[70]] == ["accepted", "executed"]
    assert [e.status for e in ev[71]] == ["late"]
    assert [e.status for e in ev[72]] == ["rejected"]
    check_invariants(rig, cmds, ev)
    st = rig.link.request_status()
    assert st is not None and st.executed == 1 and st.flags & StatusFlags.ARMED
    assert rig.link.sync.best() is not None and rig.link.sync.best().rtt_ns > 0  # type: ignore[union-attr]


def test_register_map_on_the_wire_with_a_raw_socket(rig: Rig) -> None:
    """An FC23 slot write built byte by byte (no pymodbus client) and the answer parsed as MBAP."""
    n = rig.count()
    cmd = Fire(5, 1, 2, n + 5000, n + 5100)
    base = rmap.slot_address(rmap.slot_of(5))
    regs = rmap.encode_slot(cmd, 1)
    # FC23: read start, read quantity, write start, write quantity, byte count, values (all big-endian)
    pdu = bytes([23]) + (base + rmap.SLOT_STATE).to_bytes(2, "big") + rmap.SLOT_READ_SIZE.to_bytes(2, "big")
    pdu += base.to_bytes(2, "big") + len(regs).to_bytes(2, "big") + bytes([2 * len(regs)])
    pdu += b"".join(r.to_bytes(2, "big") for r in regs)
    with socket.create_connection(("127.0.0.1", rig.plc.port), timeout=2.0) as s:
        s.sendall(build_mbap(0x1234, 1, pdu))
        data = b""
        while True:
            data += s.recv(512)
            adus, _rest = parse_mbap_stream(data)
            if adus:
                break
    a = adus[0]
    assert (a.transaction_id, a.unit_id, a.function_code, a.is_exception) == (0x1234, 1, 23, False)
    assert a.pdu[1] == 2 * rmap.SLOT_READ_SIZE
    words = [int.from_bytes(a.pdu[2 + 2 * i : 4 + 2 * i], "big") for i in range(rmap.SLOT_READ_SIZE)]
    assert rmap.SlotResult.from_regs(words).state == rmap.SlotState.QUEUED
    assert rig.plc.core.is_pending(5)


def test_garbage_and_truncated_frames_do_not_hurt_the_server(rig: Rig) -> None:
    for junk in (b"\x00\x01\x00\x00\x00\xff\x01\x03", b"\x12\x34\x00\x00\x00\x06\x01\x03\x00", b"\xde\xad\xbe\xef" * 50):
        with socket.create_connection(("127.0.0.1", rig.plc.port), timeout=1.0) as s:
            s.sendall(junk)
            s.settimeout(0.2)
            with contextlib.suppress(TimeoutError, ConnectionError):
                s.recv(256)
    # an unknown register range and a misaligned slot write: exceptions, counted, no crash
    with socket.create_connection(("127.0.0.1", rig.plc.port), timeout=1.0) as s:
        s.sendall(build_mbap(7, 1, bytes.fromhex("10 00c9 0001 02 0000")))
        adus, _ = parse_mbap_stream(s.recv(256))
        assert adus[0].is_exception and adus[0].exception_code == 2
    n = rig.count()
    rig.link.submit(Fire(1, 0, 0, n + 2500, n + 2600))
    ev = rig.wait_final({1}, 2.0)
    assert ev[1][-1].status == "executed"
    assert rig.plc.plc.bad_writes >= 1


def test_plc_server_stopped_and_restarted(rig: Rig) -> None:
    n = rig.count()
    cmds = {i: Fire(i, i % 64, i % 64, n + 5000 + 500 * i, n + 5100 + 500 * i) for i in range(40)}  # over 0.8 s
    for c in cmds.values():
        rig.link.submit(c)
    time.sleep(0.3)
    rig.plc.stop_server()  # the PLC drops off the network (its program keeps scanning)
    time.sleep(0.3)
    rig.plc.server.start()  # back on the same port
    ev = rig.wait_final(set(cmds), 5.0)
    totals = check_invariants(rig, cmds, ev)
    assert rig.link.stats()["reconnects"] >= 1
    assert rig.plc.core.counters.watchdog_trips >= 1
    assert totals["executed"] >= 10 and totals["late"] >= 1


def test_a_fresh_plc_that_lost_its_memory(rig: Rig) -> None:
    """Another PLC program start (a new boot id): the pending commands are lost, never rewritten into it."""
    n = rig.count()
    cmds = {i: Fire(i, 1, 1, n + 12_500 + 100 * i, n + 12_550 + 100 * i) for i in range(10)}  # 0.5 s ahead
    for c in cmds.values():
        rig.link.submit(c)
    assert rig.link.wait_idle(5.0)
    port = rig.plc.port
    rig.plc.stop()
    plc2 = PlcEmulator(rig.device, ControllerLimits(queue_capacity=64), port=port).start()
    rig.plc = plc2
    ev = rig.wait_final(set(cmds), 4.0)
    totals = check_invariants(rig, cmds, ev)
    assert totals["lost"] == 10 and plc2.core.counters.executed == 0
    assert rig.link.stats()["plc_restarts"] == 1
    n = rig.count()
    rig.link.submit(Fire(100, 0, 0, n + 2500, n + 2600))  # the link goes on with the new PLC
    assert rig.wait_final({100}, 3.0)[100][-1].status == "executed"


def test_hung_host_watchdog_closes_valves_within_100_ms(rig: Rig) -> None:
    n = rig.count()
    rig.link.submit(Fire(1, 0, 63, n + 500, n + 500_000))
    assert rig.link.wait_idle(5.0)
    while rig.device.open_valve_count() == 0:
        time.sleep(0.001)
    rig.link.arm_enabled = False  # the host hangs: no more heartbeat writes
    t0 = time.monotonic_ns()
    last_hb = rig.plc.core._last_heartbeat_ns
    while rig.device.open_valve_count() > 0 and time.monotonic_ns() - t0 < 2e9:
        time.sleep(0.0005)
    closed_after_ms = (time.monotonic_ns() - last_hb) / 1e6
    assert rig.plc.core.fault == FaultCode.WATCHDOG
    assert 99.0 <= closed_after_ms <= 100.0 + 60.0, closed_after_ms


def test_flood_of_10000_commands_busy_slots_and_backoff(rig: Rig) -> None:
    n = rig.count()
    cmds = {i: Fire(i, i % 64, i % 64, n + 12_500 + 2 * i, n + 12_503 + 2 * i) for i in range(10_000)}
    for c in cmds.values():
        rig.link.submit(c)
    ev = rig.wait_final(set(cmds), 30.0)
    totals = check_invariants(rig, cmds, ev)
    s = rig.link.stats()
    assert sum(totals.values()) == 10_000
    assert s["nak_queue_full"] > 0 and s["backoffs"] > 0
    assert totals["executed"] >= 32  # the first queue-full; beyond one FC23 per command the rest cannot keep up
    assert rig.plc.core.counters.watchdog_trips == 0


def test_rtu_over_a_pseudo_terminal() -> None:
    with PtyPair() as pty:
        device = FreeRunningDevice(16, SPEED)
        plc = PlcEmulator(device, transport="rtu", serial_url=pty.device_path, baudrate=115200).start()
        link = ModbusLink("rtu", serial_url=pty.host_path, baudrate=115200, timeout_ms=100)
        link.start()
        try:
            assert link.wait_ready(3.0)
            n = device.encoder_count()
            link.submit(Fire(3, 2, 5, n + 5000, n + 5200))
            link.submit(Fire(4, 2, 5, n - 5, n + 200))
            ev: dict[int, list[str]] = {}
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and not (ev.get(3, [""])[-1] == "executed" and ev.get(4)):
                for e in link.poll_events():
                    ev.setdefault(e.command_id, []).append(e.status)
                time.sleep(0.01)
            assert ev[3] == ["accepted", "executed"]
            assert ev[4] == ["late"]
            assert link.stats()["heartbeats"] > 0
        finally:
            link.close()
            plc.stop()
