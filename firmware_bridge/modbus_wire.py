"""Modbus framing as it appears on the wire (pure): MBAP (TCP) parsing and RTU CRC.

pymodbus does the framing of the links; this module is the independent
reference used to check what actually crosses the wire (traces, tests, bus
monitors) and the examples of PROTOCOL.md section 6.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from firmware_bridge.crc import crc16_modbus

_MBAP = struct.Struct(">HHHB")


class MbapError(ValueError):
    """Bytes that cannot be a Modbus/TCP ADU (length field out of range)."""


@dataclass(frozen=True, slots=True)
class MbapAdu:
    """One Modbus/TCP application data unit.

    Attributes:
        transaction_id: echoed by the server.
        protocol_id: 0 for Modbus.
        length: byte count of unit id + PDU.
        unit_id: device id.
        pdu: function code and data.
    """

    transaction_id: int
    protocol_id: int
    length: int
    unit_id: int
    pdu: bytes

    @property
    def function_code(self) -> int:
        """Function code without the exception bit."""
        return self.pdu[0] & 0x7F if self.pdu else 0

    @property
    def is_exception(self) -> bool:
        return bool(self.pdu and self.pdu[0] & 0x80)

    @property
    def exception_code(self) -> int | None:
        return self.pdu[1] if self.is_exception and len(self.pdu) > 1 else None


def parse_mbap_stream(data: bytes) -> tuple[list[MbapAdu], bytes]:
    """Split a TCP byte stream into complete ADUs.

    Returns:
        ``(adus, rest)``: the complete ADUs in order and the bytes of an incomplete last one.

    Raises:
        MbapError: a length field below 2 or above 254 (the stream cannot be re-synchronised).
    """
    adus: list[MbapAdu] = []
    i = 0
    while len(data) - i >= _MBAP.size:
        tid, pid, length, unit = _MBAP.unpack_from(data, i)
        if not 2 <= length <= 254:
            raise MbapError(f"MBAP length {length} at offset {i} is outside 2..254")
        end = i + 6 + length
        if end > len(data):
            break
        adus.append(MbapAdu(tid, pid, length, unit, bytes(data[i + _MBAP.size : end])))
        i = end
    return adus, bytes(data[i:])


def build_mbap(transaction_id: int, unit_id: int, pdu: bytes, protocol_id: int = 0) -> bytes:
    """A Modbus/TCP ADU for ``pdu``."""
    return _MBAP.pack(transaction_id, protocol_id, len(pdu) + 1, unit_id) + pdu


def build_rtu(unit_id: int, pdu: bytes) -> bytes:
    """A Modbus RTU frame: unit, PDU, CRC-16/MODBUS low byte first."""
    body = bytes([unit_id]) + pdu
    return body + crc16_modbus(body).to_bytes(2, "little")


def rtu_crc_ok(frame: bytes) -> bool:
    """True when the last two bytes are the CRC of the rest (low byte first)."""
    return len(frame) >= 4 and crc16_modbus(frame[:-2]).to_bytes(2, "little") == frame[-2:]
