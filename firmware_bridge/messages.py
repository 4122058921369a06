"""Messages of the serial controller protocol (see PROTOCOL.md, section 3).

Each message is a frozen dataclass; its wire layout is in ``LAYOUTS`` (a
``struct`` format, little-endian). Positions are in **encoder counts** of the
controller's belt encoder (signed 64 bit), valve indices are 0-based, times in
the controller's own microseconds or the host's monotonic nanoseconds as named.
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


PROTOCOL_VERSION = 1
SEQ_NONE = 0xFFFF  #: acked_seq of a NAK for a frame whose own seq could not be trusted


@dataclass(frozen=True, slots=True)
class Fire:
    """Open valves ``valve_first..valve_last`` (inclusive) from ``open_count`` to ``close_count``."""

    command_id: int
    valve_first: int
    valve_last: int
    open_count: int
    close_count: int


@dataclass(frozen=True, slots=True)
class Pick:
    """Robot pick at lateral ``x_um`` and along-belt ``y_um`` when the encoder reads ``pick_count``."""

    command_id: int
    x_um: int
    y_um: int
    pick_count: int


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


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault was latched at ``encoder_count``; the controller is disarmed until ARM."""

    fault_code: int
    encoder_count: int


Message = (
    Fire | Pick | Cancel | Heartbeat | Arm | StatusRequest | Ping | Disarm | Ack | Pong | Nak | Fired | Picked | Status | Fault
)

#: message class -> (type byte, struct layout of the payload)
LAYOUTS: dict[type, tuple[MsgType, struct.Struct]] = {
    Fire: (MsgType.FIRE, struct.Struct("<IHHqq")),
    Pick: (MsgType.PICK, struct.Struct("<Iiiq")),
    Cancel: (MsgType.CANCEL, struct.Struct("<I")),
    Heartbeat: (MsgType.HEARTBEAT, struct.Struct("<I")),
    Arm: (MsgType.ARM, struct.Struct("<I")),
    StatusRequest: (MsgType.STATUS_REQUEST, struct.Struct("<")),
    Ping: (MsgType.PING, struct.Struct("<Q")),
    Disarm: (MsgType.DISARM, struct.Struct("<")),
    Ack: (MsgType.ACK, struct.Struct("<HIB")),
    Pong: (MsgType.PONG, struct.Struct("<QQq")),
    Nak: (MsgType.NAK, struct.Struct("<HIB")),
    Fired: (MsgType.FIRED, struct.Struct("<Iqq")),
    Picked: (MsgType.PICKED, struct.Struct("<Iq")),
    Status: (MsgType.STATUS, struct.Struct("<BBBxHHHqIIIIII")),
    Fault: (MsgType.FAULT, struct.Struct("<Bq")),
}

#: type byte -> message class
BY_TYPE: dict[int, type] = {int(t): cls for cls, (t, _s) in LAYOUTS.items()}

#: messages that carry a command id and are answered with ACK/NAK
COMMANDS = (Fire, Pick, Cancel)
