"""The PLC program behind the register map, called as the Modbus server calls it (no network)."""

from __future__ import annotations

import pytest

from firmware_bridge import registers as rmap
from firmware_bridge.controller import ControllerCore, ControllerLimits
from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.emulators.plc import PlcRegisters
from firmware_bridge.messages import AckResult, FaultCode, Fire, NakReason, StatusFlags
from firmware_bridge.modbus_io import EXC_DEVICE_BUSY, EXC_ILLEGAL_ADDRESS, EXC_ILLEGAL_VALUE

MS = 1_000_000


class Plc:
    def __init__(self, capacity: int = 64) -> None:
        self.t = 1000 * MS
        self.dev = FreeRunningDevice(16, 10_000.0, time_ns=lambda: self.t)
        self.core = ControllerCore(self.dev, ControllerLimits(queue_capacity=capacity, min_lead_us=0))
        self.regs = PlcRegisters(self.core, wall_ns=lambda: self.t)

    def arm(self, session: int = 0xABCD1234) -> None:
        assert self.regs.write_registers(rmap.REG_CONTROL, [rmap.CONTROL_ARM, *rmap.u32_to_regs(session)]) is None

    def write_cmd(self, cmd: Fire) -> int | rmap.SlotResult | None:
        base = rmap.slot_address(rmap.slot_of(cmd.command_id))
        rc = self.regs.write_registers(base, rmap.encode_slot(cmd, 1))
        if rc is not None:
            return rc
        r = self.regs.read_registers(base + rmap.SLOT_STATE, rmap.SLOT_READ_SIZE)
        assert isinstance(r, list)
        return rmap.SlotResult.from_regs(r)

    def header(self) -> rmap.Header:
        r = self.regs.read_registers(0, rmap.POLL_SIZE)
        assert isinstance(r, list)
        return rmap.Header.from_regs(r)

    def advance_ms(self, ms: float) -> None:
        self.t += round(ms * MS)
        self.regs.tick()


def test_header_identifies_the_map() -> None:
    p = Plc()
    h = p.header()
    assert (h.magic, h.version, h.valve_count, h.slot_count) == (rmap.MAGIC, 2, 16, 64)
    assert not h.flags & StatusFlags.ARMED
    p.arm()
    h = p.header()
    assert h.flags & StatusFlags.ARMED and h.session_id == 0xABCD1234


def test_slot_write_is_accepted_executed_and_idempotent() -> None:
    p = Plc()
    p.arm()
    f = Fire(70, 2, 3, 100, 200)
    r = p.write_cmd(f)
    assert isinstance(r, rmap.SlotResult) and r.state == rmap.SlotState.QUEUED and r.reason == AckResult.QUEUED
    r2 = p.write_cmd(f)  # a retried write: same slot, same id, harmless
    assert isinstance(r2, rmap.SlotResult) and r2.state == rmap.SlotState.QUEUED and r2.reason == AckResult.DUPLICATE
    p.advance_ms(25)
    mirror = p.regs.read_registers(rmap.STATE_BASE + rmap.slot_of(70), 1)
    assert mirror == [int(rmap.SlotState.EXECUTED)]
    r3 = p.write_cmd(f)
    assert isinstance(r3, rmap.SlotResult) and (r3.state, r3.open_count, r3.close_count) == (rmap.SlotState.EXECUTED, 100, 200)
    assert p.core.counters.executed == 1


def test_refusals_land_in_the_slot_with_a_reason() -> None:
    p = Plc()
    r = p.write_cmd(Fire(1, 0, 0, 100, 200))
    assert isinstance(r, rmap.SlotResult) and (r.state, r.reason) == (rmap.SlotState.REJECTED, NakReason.NOT_ARMED)
    p.arm()
    p.advance_ms(20)
    r = p.write_cmd(Fire(2, 0, 0, 100, 300))
    assert isinstance(r, rmap.SlotResult) and (r.state, r.reason) == (rmap.SlotState.LATE, NakReason.LATE)
    r = p.write_cmd(Fire(3, 0, 16, 900, 1000))
    assert isinstance(r, rmap.SlotResult) and (r.state, r.reason) == (rmap.SlotState.REJECTED, NakReason.BAD_FIELD)


def test_busy_slot_and_full_queue_answer_device_busy() -> None:
    p = Plc(capacity=2)
    p.arm()
    assert isinstance(p.write_cmd(Fire(1, 0, 0, 500, 600)), rmap.SlotResult)
    assert p.write_cmd(Fire(65, 0, 0, 500, 600)) == EXC_DEVICE_BUSY  # slot 1 still holds command 1
    assert isinstance(p.write_cmd(Fire(2, 0, 0, 500, 600)), rmap.SlotResult)
    assert p.write_cmd(Fire(3, 0, 0, 500, 600)) == EXC_DEVICE_BUSY  # queue capacity 2
    assert p.header().queue_full == 2


def test_malformed_writes_are_refused_and_counted() -> None:
    p = Plc()
    p.arm()
    assert p.regs.write_registers(rmap.SLOT_BASE + 1, [0] * 13) == EXC_ILLEGAL_ADDRESS  # not on a slot boundary
    assert p.regs.write_registers(rmap.SLOT_BASE, [0] * 12) == EXC_ILLEGAL_ADDRESS  # short
    bad_kind = rmap.encode_slot(Fire(0, 0, 0, 500, 600), 1)
    bad_kind[2] = 7
    assert p.regs.write_registers(rmap.SLOT_BASE, bad_kind) == EXC_ILLEGAL_VALUE
    assert p.regs.write_registers(rmap.slot_address(5), rmap.encode_slot(Fire(6, 0, 0, 500, 600), 1)) == EXC_ILLEGAL_VALUE
    assert p.regs.write_registers(rmap.REG_CONTROL, [9, 0, 0]) == EXC_ILLEGAL_VALUE
    assert p.regs.read_registers(rmap.MAP_SIZE - 1, 2) == EXC_ILLEGAL_ADDRESS
    assert p.header().bad_writes == 5


def test_heartbeat_change_feeds_the_watchdog() -> None:
    p = Plc()
    p.arm()
    p.write_cmd(Fire(1, 0, 3, 100, 5000))
    for k in range(10):  # 10 x 30 ms with a changing heartbeat
        p.advance_ms(30)
        p.regs.write_registers(rmap.REG_HEARTBEAT, [k + 1])
    assert p.core.armed
    for _ in range(5):  # the same value again and again does not feed it
        p.advance_ms(30)
        p.regs.write_registers(rmap.REG_HEARTBEAT, [10])
    h = p.header()
    assert h.fault_code == FaultCode.WATCHDOG and not h.flags & StatusFlags.ARMED and p.dev.open_valve_count() == 0
    assert p.regs.read_registers(rmap.STATE_BASE + 1, 1) == [int(rmap.SlotState.EXECUTED)]  # cut short, reported


def test_cancel_register() -> None:
    p = Plc()
    p.arm()
    p.write_cmd(Fire(4, 0, 0, 500, 600))
    assert p.regs.write_registers(rmap.REG_CANCEL_ID, rmap.u32_to_regs(4)) is None
    assert p.regs.read_registers(rmap.REG_CANCEL_RESULT, 1) == [int(AckResult.CANCELLED)]
    assert p.regs.read_registers(rmap.STATE_BASE + 4, 1) == [int(rmap.SlotState.CANCELLED)]
    p.regs.write_registers(rmap.REG_CANCEL_ID, rmap.u32_to_regs(999))
    assert p.regs.read_registers(rmap.REG_CANCEL_RESULT, 1) == [int(AckResult.UNKNOWN_ID)]


def test_rearm_after_fault_lets_dropped_commands_be_written_again() -> None:
    p = Plc()
    p.arm()
    p.write_cmd(Fire(9, 0, 0, 3000, 3100))
    p.advance_ms(150)  # no heartbeat: watchdog
    assert p.regs.read_registers(rmap.STATE_BASE + 9, 1) == [int(rmap.SlotState.DROPPED)]
    p.arm()  # same session
    r = p.write_cmd(Fire(9, 0, 0, 3000, 3100))
    assert isinstance(r, rmap.SlotResult) and r.state == rmap.SlotState.QUEUED


def test_boot_id_and_epoch_in_the_header_and_a_new_boot_id_at_restart() -> None:
    p = Plc()
    h = p.header()
    assert h.boot_id == p.regs.boot_id != 0 and h.epoch == 1
    p.arm()
    p.write_cmd(Fire(1, 0, 0, 500, 600))
    p.regs.power_cycle(boot_id=0x1234ABCD)
    h = p.header()
    assert (h.boot_id, h.epoch, h.encoder_count) == (0x1234ABCD, 1, 0) and not h.flags & StatusFlags.ARMED
    assert p.regs.read_registers(rmap.STATE_BASE + 1, 1) == [int(rmap.SlotState.EMPTY)]


def test_encoder_reset_drops_queued_slots_with_reason_9_and_refuses_the_old_epoch() -> None:
    p = Plc()
    p.arm()
    p.advance_ms(10)  # count 100
    assert isinstance(p.write_cmd(Fire(1, 0, 0, 500, 600)), rmap.SlotResult)
    p.regs.reset_encoder()
    h = p.header()
    assert (h.epoch, h.encoder_count) == (2, 0) and h.flags & StatusFlags.ARMED  # stays armed
    assert p.regs.read_registers(rmap.STATE_BASE + 1, 1) == [(9 << 8) | int(rmap.SlotState.DROPPED)]
    assert not p.core.is_pending(1)
    r = p.write_cmd(Fire(2, 0, 0, 500, 600))  # written with epoch 1: refused, never executed
    assert isinstance(r, rmap.SlotResult) and (r.state, r.reason) == (rmap.SlotState.REJECTED, rmap.REASON_WRONG_EPOCH)
    base = rmap.slot_address(3)
    assert p.regs.write_registers(base, rmap.encode_slot(Fire(3, 0, 0, 500, 600), 2)) is None
    assert p.core.is_pending(3)
    p.advance_ms(70)  # the new count passes 600: it runs in the new count
    assert p.regs.read_registers(base + rmap.SLOT_STATE, rmap.SLOT_READ_SIZE)[:6] == [2, 0, 0, 0, 0, 500]


def test_injected_exceptions_answer_the_next_requests_then_stop() -> None:
    p = Plc()
    p.regs.inject_exceptions(11, 2)
    assert p.regs.read_registers(0, 4) == 11
    assert p.regs.write_registers(rmap.REG_HEARTBEAT, [1]) == 11
    assert isinstance(p.regs.read_registers(0, 4), list)
    with pytest.raises(ValueError, match="exception code 9 cannot be served"):
        p.regs.inject_exceptions(9)
