"""Sans-IO codec of the serial link: messages <-> bytes (no ports, no threads, no clocks).

A frame on the wire is ``COBS(body) 0x00`` where
``body = type:u8 | seq:u16le | payload | crc:u16le`` and ``crc`` is
CRC-16/CCITT-FALSE over ``type | seq | payload`` (PROTOCOL.md, section 2).

``encode_frame`` builds one frame. ``FrameDecoder`` is fed whatever bytes the
port returned (any split, any garbage) and yields decoded frames and errors;
it never raises on input and never grows without bound.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from enum import Enum

from firmware_bridge.cobs import CobsError, cobs_decode, cobs_encode
from firmware_bridge.crc import crc16_ccitt
from firmware_bridge.messages import BY_TYPE, LAYOUTS, Message

_HEADER = struct.Struct("<BH")
_CRC = struct.Struct("<H")
MAX_PAYLOAD = 64  #: longest payload of any message, bytes
MAX_BODY = _HEADER.size + MAX_PAYLOAD + _CRC.size
#: longest encoded frame, delimiter excluded (COBS adds one byte per 254)
MAX_ENCODED = MAX_BODY + 1 + MAX_BODY // 254


class FrameErrorKind(Enum):
    """Why bytes between two delimiters were not a valid frame."""

    OVERSIZE = "oversize"  #: no delimiter within MAX_ENCODED bytes (noise or lost delimiter)
    COBS = "cobs"  #: not valid COBS
    TRUNCATED = "truncated"  #: shorter than type + seq + crc
    BAD_CRC = "bad_crc"
    UNKNOWN_TYPE = "unknown_type"  #: CRC fine, type byte not defined
    BAD_LENGTH = "bad_length"  #: CRC fine, payload length wrong for the type


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """A valid frame: its sequence number and message."""

    seq: int
    message: Message


@dataclass(frozen=True, slots=True)
class FrameError:
    """Bytes that were not a valid frame.

    Attributes:
        kind: what was wrong.
        seq: the frame's sequence number when the CRC was good (so it can be NAKed), else None.
        type_byte: the type byte when the CRC was good, else None.
        size: number of bytes discarded.
    """

    kind: FrameErrorKind
    seq: int | None = None
    type_byte: int | None = None
    size: int = 0


DecodeResult = DecodedFrame | FrameError


def encode_payload(message: Message) -> tuple[int, bytes]:
    """Return ``(type byte, payload bytes)`` of a message.

    Raises:
        ValueError: a field does not fit its wire type (e.g. negative valve index).
    """
    try:
        msg_type, layout = LAYOUTS[type(message)]
    except KeyError:
        raise ValueError(f"{type(message).__name__} is not a protocol message") from None
    values = [getattr(message, f.name) for f in dataclasses.fields(message)]
    try:
        return int(msg_type), layout.pack(*values)
    except struct.error as e:
        raise ValueError(f"{message!r} does not fit the wire layout of {msg_type.name} ({e})") from None


def encode_body(message: Message, seq: int) -> bytes:
    """The unframed body ``type | seq | payload | crc``."""
    if not 0 <= seq <= 0xFFFF:
        raise ValueError(f"sequence number {seq} is outside 0..65535")
    msg_type, payload = encode_payload(message)
    head = _HEADER.pack(msg_type, seq) + payload
    return head + _CRC.pack(crc16_ccitt(head))


def encode_frame(message: Message, seq: int) -> bytes:
    """One complete frame for the wire: ``COBS(body) + b"\\x00"``."""
    return cobs_encode(encode_body(message, seq)) + b"\x00"


def decode_body(body: bytes) -> DecodeResult:
    """Decode one unframed body (after COBS decoding)."""
    if len(body) < _HEADER.size + _CRC.size:
        return FrameError(FrameErrorKind.TRUNCATED, size=len(body))
    head, crc_bytes = body[:-2], body[-2:]
    if crc16_ccitt(head) != _CRC.unpack(crc_bytes)[0]:
        return FrameError(FrameErrorKind.BAD_CRC, size=len(body))
    type_byte, seq = _HEADER.unpack_from(head)
    cls = BY_TYPE.get(type_byte)
    if cls is None:
        return FrameError(FrameErrorKind.UNKNOWN_TYPE, seq=seq, type_byte=type_byte, size=len(body))
    layout = LAYOUTS[cls][1]
    payload = head[_HEADER.size :]
    if len(payload) != layout.size:
        return FrameError(FrameErrorKind.BAD_LENGTH, seq=seq, type_byte=type_byte, size=len(body))
    message: Message = cls(*layout.unpack(payload))
    return DecodedFrame(seq, message)


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, get frames and errors back.

    Bytes before the first delimiter of a stream are treated as a (possibly
    partial) frame and reported as an error if invalid, so a receiver that
    starts mid-frame loses exactly that frame. Empty frames (consecutive
    delimiters) are ignored: a sender may emit a lone 0x00 to resynchronise.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discarding = False
        self._discarded = 0

    def feed(self, data: bytes) -> list[DecodeResult]:
        """Consume ``data``; return what completed, in order."""
        out: list[DecodeResult] = []
        start = 0
        while start < len(data):
            end = data.find(b"\x00", start)
            chunk = data[start:] if end < 0 else data[start:end]
            if self._discarding:
                self._discarded += len(chunk)
            else:
                self._buf += chunk
                if len(self._buf) > MAX_ENCODED:
                    self._discarding = True
                    self._discarded = len(self._buf)
                    self._buf.clear()
            if end < 0:
                break
            out.extend(self._end_of_frame())
            start = end + 1
        return out

    def reset(self) -> None:
        """Forget any partial frame (after a reconnect)."""
        self._buf.clear()
        self._discarding = False
        self._discarded = 0

    def _end_of_frame(self) -> list[DecodeResult]:
        if self._discarding:
            size = self._discarded
            self._discarding = False
            self._discarded = 0
            return [FrameError(FrameErrorKind.OVERSIZE, size=size)]
        if not self._buf:
            return []
        block = bytes(self._buf)
        self._buf.clear()
        try:
            body = cobs_decode(block)
        except CobsError:
            return [FrameError(FrameErrorKind.COBS, size=len(block))]
        return [decode_body(body)]
