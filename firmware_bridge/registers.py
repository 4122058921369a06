"""The Modbus register map of the PLC protocol (pure: constants and conversions).

All addresses are 0-based holding registers (function codes 3, 6, 16 and 23).
Wider values span several registers, **most significant word first** (the
common "big-endian word order"); signed values are two's complement. The map
is specified in PROTOCOL.md, section 6; the numbers here are that table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from firmware_bridge.messages import Fire, Pick, Status

MAGIC = 0x5346  #: 'SF' in register 0: identifies a PLC implementing this map
MAP_VERSION = 2  #: register 1: the map/protocol version this host speaks (PROTOCOL.md section 9)

# ---- header (read only) -------------------------------------------------
REG_MAGIC = 0
REG_VERSION = 1
REG_VALVE_COUNT = 2
REG_SLOT_COUNT = 3
REG_FLAGS = 4  #: firmware_bridge.messages.StatusFlags bits
REG_FAULT = 5  #: firmware_bridge.messages.FaultCode
REG_QUEUE_LEN = 6
REG_QUEUE_CAPACITY = 7
REG_ENCODER = 8  #: i64, 8..11
REG_DEVICE_TIME_US = 12  #: u64, 12..15
REG_EXECUTED = 16  #: u32 counters, two registers each
REG_LATE = 18
REG_REJECTED = 20
REG_BAD_WRITES = 22
REG_WATCHDOG_TRIPS = 24
REG_SESSION = 26  #: u32: session id of the last ARM
REG_QUEUE_FULL = 28
REG_BOOT_ID = 30  #: u32, 30..31: a new random non-zero value at every PLC start
HEADER_SIZE = 32

# ---- control (host writes) ----------------------------------------------
REG_HEARTBEAT = 32  #: host writes a new value every period; a *change* feeds the watchdog
REG_CONTROL = 33  #: write CONTROL_ARM (with the session id in 34..35) or CONTROL_DISARM
REG_CONTROL_SESSION = 34  #: u32, 34..35
REG_CANCEL_ID = 36  #: u32, 36..37: writing a command id cancels it
REG_CANCEL_RESULT = 38  #: firmware_bridge.messages.AckResult of the last cancel
REG_EPOCH = 39  #: u16: the encoder epoch (incremented whenever the count is re-zeroed or jumps)
CONTROL_ARM = 1
CONTROL_DISARM = 2

# ---- slot state mirror (read only): one register per slot ----------------
STATE_BASE = 40  #: 40..103: low byte SlotState, high byte reason
SLOT_COUNT = 64

#: one read of 0..POLL_SIZE-1 returns header, control and all slot states
POLL_SIZE = STATE_BASE + SLOT_COUNT

# ---- command slots ------------------------------------------------------
SLOT_BASE = 200
SLOT_SIZE = 24
SLOT_WRITE_SIZE = 14  #: host writes offsets 0..13
SLOT_EPOCH = 13  #: offset of the command's epoch (host written)
SLOT_STATE = 14  #: offset of the PLC-written part (14..23): state, reason, actual counts
SLOT_READ_SIZE = SLOT_SIZE - SLOT_STATE

#: slot reason of a command refused or dropped because its epoch is not the PLC's (NAK reason 9)
REASON_WRONG_EPOCH = 9
MAP_SIZE = SLOT_BASE + SLOT_COUNT * SLOT_SIZE


class SlotKind(IntEnum):
    """Slot offset 2."""

    EMPTY = 0
    FIRE = 1
    PICK = 2


class SlotState(IntEnum):
    """Slot offset 14 (and the low byte of the state mirror)."""

    EMPTY = 0  #: never written (or PLC restarted)
    QUEUED = 1  #: accepted, waiting for its position
    EXECUTED = 2  #: done; offsets 16..23 hold the actual counts
    LATE = 3  #: refused, the position had passed (reason LATE)
    REJECTED = 4  #: refused (reason: a NakReason)
    CANCELLED = 5
    DROPPED = 6  #: dropped by a fault or DISARM before executing; may be written again (not with reason 9)


def describe(enum: type[IntEnum], value: int) -> str:
    """The name of ``value`` in ``enum``, or ``unknown(N)`` for a value this host does not know (never raises)."""
    try:
        return enum(value).name
    except ValueError:
        return f"unknown({value})"


FINAL_STATES = frozenset({SlotState.EXECUTED, SlotState.LATE, SlotState.REJECTED, SlotState.CANCELLED, SlotState.DROPPED})


def slot_of(command_id: int) -> int:
    """Slot index of a command id: slots are addressed by id, so a retried write hits the same slot."""
    return command_id % SLOT_COUNT


def slot_address(slot: int) -> int:
    """First register of a slot."""
    return SLOT_BASE + slot * SLOT_SIZE


def u32_to_regs(v: int) -> list[int]:
    v &= 0xFFFFFFFF
    return [v >> 16, v & 0xFFFF]


def i32_to_regs(v: int) -> list[int]:
    return u32_to_regs(v & 0xFFFFFFFF)


def i64_to_regs(v: int) -> list[int]:
    v &= 0xFFFFFFFFFFFFFFFF
    return [(v >> 48) & 0xFFFF, (v >> 32) & 0xFFFF, (v >> 16) & 0xFFFF, v & 0xFFFF]


def regs_to_u32(r: Sequence[int]) -> int:
    return ((r[0] & 0xFFFF) << 16) | (r[1] & 0xFFFF)


def regs_to_i32(r: Sequence[int]) -> int:
    v = regs_to_u32(r)
    return v - (1 << 32) if v & 0x80000000 else v


def regs_to_u64(r: Sequence[int]) -> int:
    return ((r[0] & 0xFFFF) << 48) | ((r[1] & 0xFFFF) << 32) | ((r[2] & 0xFFFF) << 16) | (r[3] & 0xFFFF)


def regs_to_i64(r: Sequence[int]) -> int:
    v = regs_to_u64(r)
    return v - (1 << 64) if v & (1 << 63) else v


def encode_slot(command: Fire | Pick, epoch: int) -> list[int]:
    """The 14 registers the host writes into a slot (offsets 0..13): the command and the epoch of its positions."""
    if isinstance(command, Fire):
        regs = [*u32_to_regs(command.command_id), int(SlotKind.FIRE), command.valve_first, command.valve_last]
        regs += i64_to_regs(command.open_count) + i64_to_regs(command.close_count)
    else:
        regs = [*u32_to_regs(command.command_id), int(SlotKind.PICK), *i32_to_regs(command.x_um)]
        regs += i64_to_regs(command.pick_count) + i32_to_regs(command.y_um) + [0, 0]
    regs.append(epoch)
    if any(not 0 <= r <= 0xFFFF for r in regs):
        raise ValueError(f"{command!r} does not fit the slot layout")
    return regs


def decode_slot(regs: Sequence[int]) -> Fire | Pick | None:
    """Command in the written registers of a slot (offsets 0..12); None if the kind is not FIRE or PICK."""
    cid = regs_to_u32(regs[0:2])
    kind = regs[2]
    if kind == SlotKind.FIRE:
        return Fire(cid, regs[3], regs[4], regs_to_i64(regs[5:9]), regs_to_i64(regs[9:13]))
    if kind == SlotKind.PICK:
        return Pick(cid, regs_to_i32(regs[3:5]), regs_to_i32(regs[9:11]), regs_to_i64(regs[5:9]))
    return None


@dataclass(frozen=True, slots=True)
class SlotResult:
    """The PLC-written part of a slot (offsets 14..23).

    ``state`` is the raw register value: a ``SlotState``, or a number this host does not know
    (a newer PLC), kept as it is so that it is reported as ``unknown(N)`` (see :func:`describe`).
    """

    state: int
    reason: int
    open_count: int
    close_count: int

    def to_regs(self) -> list[int]:
        return [int(self.state), self.reason, *i64_to_regs(self.open_count), *i64_to_regs(self.close_count)]

    @staticmethod
    def from_regs(r: Sequence[int]) -> SlotResult:
        if len(r) < SLOT_READ_SIZE:
            raise ValueError(f"a slot result needs {SLOT_READ_SIZE} registers, got {len(r)}")
        return SlotResult(r[0], r[1], regs_to_i64(r[2:6]), regs_to_i64(r[6:10]))


@dataclass(frozen=True, slots=True)
class Header:
    """Decoded header registers 0..31 (and the epoch, register 39, when the registers read reach it)."""

    magic: int
    version: int
    valve_count: int
    slot_count: int
    flags: int
    fault_code: int
    queue_len: int
    queue_capacity: int
    encoder_count: int
    device_time_us: int
    executed: int
    late: int
    rejected: int
    bad_writes: int
    watchdog_trips: int
    session_id: int
    queue_full: int
    boot_id: int = 0
    epoch: int = 0

    @staticmethod
    def from_regs(r: Sequence[int]) -> Header:
        if len(r) < HEADER_SIZE:
            raise ValueError(f"header needs {HEADER_SIZE} registers, got {len(r)}")
        return Header(
            magic=r[REG_MAGIC],
            version=r[REG_VERSION],
            valve_count=r[REG_VALVE_COUNT],
            slot_count=r[REG_SLOT_COUNT],
            flags=r[REG_FLAGS],
            fault_code=r[REG_FAULT],
            queue_len=r[REG_QUEUE_LEN],
            queue_capacity=r[REG_QUEUE_CAPACITY],
            encoder_count=regs_to_i64(r[REG_ENCODER : REG_ENCODER + 4]),
            device_time_us=regs_to_u64(r[REG_DEVICE_TIME_US : REG_DEVICE_TIME_US + 4]),
            executed=regs_to_u32(r[REG_EXECUTED : REG_EXECUTED + 2]),
            late=regs_to_u32(r[REG_LATE : REG_LATE + 2]),
            rejected=regs_to_u32(r[REG_REJECTED : REG_REJECTED + 2]),
            bad_writes=regs_to_u32(r[REG_BAD_WRITES : REG_BAD_WRITES + 2]),
            watchdog_trips=regs_to_u32(r[REG_WATCHDOG_TRIPS : REG_WATCHDOG_TRIPS + 2]),
            session_id=regs_to_u32(r[REG_SESSION : REG_SESSION + 2]),
            queue_full=regs_to_u32(r[REG_QUEUE_FULL : REG_QUEUE_FULL + 2]),
            boot_id=regs_to_u32(r[REG_BOOT_ID : REG_BOOT_ID + 2]),
            epoch=r[REG_EPOCH] if len(r) > REG_EPOCH else 0,
        )

    def to_status(self) -> Status:
        """The header as the STATUS of the serial protocol (the same fields; bad writes count as bad frames)."""
        return Status(
            version=self.version,
            flags=self.flags,
            fault_code=self.fault_code,
            valve_count=self.valve_count,
            queue_len=self.queue_len,
            queue_capacity=self.queue_capacity,
            encoder_count=self.encoder_count,
            executed=self.executed,
            late=self.late,
            rejected=self.rejected,
            bad_frames=self.bad_writes,
            watchdog_trips=self.watchdog_trips,
            session_id=self.session_id,
        )

    def to_regs(self) -> list[int]:
        """Registers 0..31 (the epoch lives in the control block, register 39)."""
        r = [0] * HEADER_SIZE
        r[REG_MAGIC] = self.magic
        r[REG_VERSION] = self.version
        r[REG_VALVE_COUNT] = self.valve_count
        r[REG_SLOT_COUNT] = self.slot_count
        r[REG_FLAGS] = self.flags
        r[REG_FAULT] = self.fault_code
        r[REG_QUEUE_LEN] = min(self.queue_len, 0xFFFF)
        r[REG_QUEUE_CAPACITY] = min(self.queue_capacity, 0xFFFF)
        r[REG_ENCODER : REG_ENCODER + 4] = i64_to_regs(self.encoder_count)
        r[REG_DEVICE_TIME_US : REG_DEVICE_TIME_US + 4] = i64_to_regs(self.device_time_us)
        for reg, v in (
            (REG_EXECUTED, self.executed),
            (REG_LATE, self.late),
            (REG_REJECTED, self.rejected),
            (REG_BAD_WRITES, self.bad_writes),
            (REG_WATCHDOG_TRIPS, self.watchdog_trips),
            (REG_SESSION, self.session_id),
            (REG_QUEUE_FULL, self.queue_full),
            (REG_BOOT_ID, self.boot_id),
        ):
            r[reg : reg + 2] = u32_to_regs(v)
        return r
