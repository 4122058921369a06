"""Checksums used on the controller links (pure functions, no I/O).

* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR) protects
  the serial frames; it is what ``binascii.crc_hqx(data, 0xFFFF)`` computes, and what
  most microcontroller HALs call "CRC-16-CCITT".
* CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) protects Modbus RTU frames; it
  is sent low byte first.
"""

from __future__ import annotations

import binascii


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value of ``b"123456789"`` is 0x29B1)."""
    return binascii.crc_hqx(data, 0xFFFF)


def _modbus_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_MODBUS_TABLE = _modbus_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS of ``data`` (check value of ``b"123456789"`` is 0x4B37).

    On the wire the result goes low byte first: ``crc.to_bytes(2, "little")``.
    """
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _MODBUS_TABLE[(crc ^ b) & 0xFF]
    return crc
