"""Messages of the serial controller protocol, version 2 (see PROTOCOL.md, section 3).

Each message is a frozen dataclass; its wire layout is in ``LAYOUTS`` (a
``struct`` format, little-endian). Positions are in **encoder counts** of the
controller's belt encoder (signed 64 bit), valve indices are 0-based, times in
the controller's own microseconds or the host's monotonic nanoseconds as named.
Codes travel as plain integers: a value this version does not define (a newer
controller's NAK reason, fault or flag) is shown by ``enum_name``/``flag_names``
as ``unknown(N)``, never refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag


class MsgType(IntEnum):
    """Type byte of a frame. Host -> controller below 0x80, controller -> host from 0x80."""

    FIRE = 0x10
    PICK = 0x11
    CANCEL = 0x12
    HEARTBEAT = 0x13
    ARM = 0x14
    STATUS_REQUEST = 0x15
    PING = 0x16
    DISARM = 0x17
    ACK = 0x80
    PONG = 0x81
    NAK = 0x82
    FIRED = 0x83
    PICKED = 0x84
    STATUS = 0x85
    FAULT = 0x86
    EPOCH = 0x87


class NakReason(IntEnum):
    """Why the controller refused a frame."""

    LATE = 1  #: the open/pick position has already passed (or is closer than the minimum lead)
    QUEUE_FULL = 2  #: no free command slot; retry later
    BAD_CRC = 3  #: the frame's CRC did not match (seq unknown: acked_seq is 0xFFFF)
    BAD_FIELD = 4  #: a field is out of range (valve index, position order, distance ahead)
    UNKNOWN_TYPE = 5  #: type byte not defined by this protocol version
    NOT_ARMED = 6  #: commands are refused until ARM (after power-up or a fault)
    MALFORMED = 7  #: COBS error, truncated frame or wrong payload length for the type
    CONFLICT = 8  #: the command id is already used by a different command
    WRONG_EPOCH = 9  #: the command's epoch is not the controller's current one (its count was reset)


class AckResult(IntEnum):
    """What an ACK confirms."""

    QUEUED = 0  #: new command accepted and scheduled
    DUPLICATE = 1  #: same command id and content already queued (retransmission): no change
    CANCELLED = 2  #: CANCEL removed the command before it executed
    UNKNOWN_ID = 3  #: CANCEL for an id not queued (never seen, already executed or already cancelled)
    DONE = 4  #: retransmission of a command that has already executed (its report is sent again)
    OK = 5  #: ARM / DISARM done


class FaultCode(IntEnum):
    """Latched controller faults (FAULT message, STATUS.fault_code)."""

    NONE = 0
    WATCHDOG = 1  #: no HEARTBEAT within the watchdog period: all valves closed
    ENCODER = 2  #: encoder signal lost or implausible
    OUTPUT = 3  #: valve driver fault
    INTERNAL = 4  #: firmware error


class StatusFlags(IntFlag):
    """Bit field of STATUS.flags."""

    ARMED = 0x01
    FAULTED = 0x02
    VALVES_OPEN = 0x04
    ENCODER_OK = 0x08


PROTOCOL_VERSION = 2
SEQ_NONE = 0xFFFF  #: acked_seq of a NAK for a frame whose own seq could not be trusted
EPOCH_UNSET = 0  #: epoch of a command not yet stamped (the link stamps its current epoch on submission)
STATUS_V1_PAYLOAD = 42  #: STATUS payload length of protocol version 1 (no boot id, no epoch)


def enum_name(enum: type[IntEnum], value: int) -> str:
    """The name of ``value`` in ``enum``, or ``unknown(N)`` for a value this version does not define.

    A newer controller may send codes this host does not know; they are shown, never refused.
    """
    try:
        return enum(value).name
    except ValueError:
        return f"unknown({value})"


def flag_names(value: int) -> str:
    """STATUS flags in words, e.g. ``ARMED|ENCODER_OK`` or ``ARMED|unknown(0x40)``."""
    known = 0
    names = []
    for f in StatusFlags:
        if value & f.value:
            names.append(str(f.name))
            known |= f.value
    if value & ~known:
        names.append(f"unknown(0x{value & ~known:02x})")
    return "|".join(names) if names else "none"


def next_epoch(epoch: int) -> int:
    """The epoch after ``epoch`` (u16, wrapping, skipping 0)."""
    e = (epoch + 1) & 0xFFFF
    return e or 1


@dataclass(frozen=True, slots=True)
class Fire:
    """Open valves ``valve_first..valve_last`` (inclusive) from ``open_count`` to ``close_count``."""

    command_id: int
    valve_first: int
    valve_last: int
    open_count: int
    close_count: int
    epoch: int = EPOCH_UNSET  #: encoder epoch the counts belong to (0: stamped by the link on submission)


@dataclass(frozen=True, slots=True)
class Pick:
    """Robot pick at lateral ``x_um`` and along-belt ``y_um`` when the encoder reads ``pick_count``."""

    command_id: int
    x_um: int
    y_um: int
    pick_count: int
    epoch: int = EPOCH_UNSET  #: encoder epoch the count belongs to (0: stamped by the link on submission)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel a queued command that has not executed."""

    command_id: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Feeds the watchdog; ``counter`` increments by one per heartbeat (wraps at 2**32)."""

    counter: int


@dataclass(frozen=True, slots=True)
class Arm:
    """Arm the controller (clears a latched fault). A new ``session_id`` forgets old command ids."""

    session_id: int


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """Ask for a STATUS."""


@dataclass(frozen=True, slots=True)
class Ping:
    """Clock/encoder sync probe; ``host_time_ns`` is echoed in the PONG."""

    host_time_ns: int


@dataclass(frozen=True, slots=True)
class Disarm:
    """Close all valves, drop every queued command, refuse commands until ARM."""


@dataclass(frozen=True, slots=True)
class Ack:
    """Positive answer to the frame with sequence number ``acked_seq``."""

    acked_seq: int
    command_id: int
    result: int


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to PING: the controller's clock and encoder, latched when the PING was received."""

    host_time_ns: int
    device_time_us: int
    encoder_count: int
    boot_id: int = 0  #: random per controller start (new after any restart)
    epoch: int = 0  #: encoder epoch of ``encoder_count``


@dataclass(frozen=True, slots=True)
class Nak:
    """Negative answer to the frame ``acked_seq`` with a ``NakReason``."""

    acked_seq: int
    command_id: int
    reason: int


@dataclass(frozen=True, slots=True)
class Fired:
    """A FIRE executed: the encoder counts at which the valves actually opened and closed."""

    command_id: int
    open_count: int
    close_count: int


@dataclass(frozen=True, slots=True)
class Picked:
    """A PICK executed at ``pick_count``."""

    command_id: int
    pick_count: int


@dataclass(frozen=True, slots=True)
class Status:
    """Controller state and counters (answer to STATUS_REQUEST)."""

    version: int
    flags: int
    fault_code: int
    valve_count: int
    queue_len: int
    queue_capacity: int
    encoder_count: int
    executed: int
    late: int
    rejected: int
    bad_frames: int
    watchdog_trips: int
    session_id: int
    boot_id: int = 0  #: random per controller start (new after any restart)
    epoch: int = 0  #: encoder epoch of ``encoder_count``


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault was latched at ``encoder_count``; the controller is disarmed until ARM."""

    fault_code: int
    encoder_count: int


@dataclass(frozen=True, slots=True)
class Epoch:
    """The controller's encoder epoch changed (count re-zeroed or jumped): queued commands were dropped."""

    boot_id: int
    epoch: int  #: the new epoch
    encoder_count: int  #: count at the change


Message = (
    Fire
    | Pick
    | Cancel
    | Heartbeat
    | Arm
    | StatusRequest
    | Ping
    | Disarm
    | Ack
    | Pong
    | Nak
    | Fired
    | Picked
    | Status
    | Fault
    | Epoch
)

#: message class -> (type byte, struct layout of the payload)
LAYOUTS: dict[type, tuple[MsgType, struct.Struct]] = {
    Fire: (MsgType.FIRE, struct.Struct("<IHHqqH")),
    Pick: (MsgType.PICK, struct.Struct("<IiiqH")),
    Cancel: (MsgType.CANCEL, struct.Struct("<I")),
    Heartbeat: (MsgType.HEARTBEAT, struct.Struct("<I")),
    Arm: (MsgType.ARM, struct.Struct("<I")),
    StatusRequest: (MsgType.STATUS_REQUEST, struct.Struct("<")),
    Ping: (MsgType.PING, struct.Struct("<Q")),
    Disarm: (MsgType.DISARM, struct.Struct("<")),
    Ack: (MsgType.ACK, struct.Struct("<HIB")),
    Pong: (MsgType.PONG, struct.Struct("<QQqIH")),
    Nak: (MsgType.NAK, struct.Struct("<HIB")),
    Fired: (MsgType.FIRED, struct.Struct("<Iqq")),
    Picked: (MsgType.PICKED, struct.Struct("<Iq")),
    Status: (MsgType.STATUS, struct.Struct("<BBBxHHHqIIIIIIIH")),
    Fault: (MsgType.FAULT, struct.Struct("<Bq")),
    Epoch: (MsgType.EPOCH, struct.Struct("<IHq")),
}

#: type byte -> message class
BY_TYPE: dict[int, type] = {int(t): cls for cls, (t, _s) in LAYOUTS.items()}

#: messages that carry a command id and are answered with ACK/NAK
COMMANDS = (Fire, Pick, Cancel)
