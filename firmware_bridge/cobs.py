"""Consistent Overhead Byte Stuffing (COBS), the framing of the serial link.

COBS rewrites a block so that it contains no 0x00 byte; a 0x00 then marks the
end of every frame on the wire. A receiver that joins mid-stream or loses bytes
resynchronises at the next 0x00, so a corrupted frame costs one frame, never
the stream. Overhead: one byte per 254 bytes of data, plus the delimiter.
"""

from __future__ import annotations


class CobsError(ValueError):
    """The block is not valid COBS (a zero byte inside, or a code past the end)."""


def cobs_encode(data: bytes) -> bytes:
    """Encode ``data``; the result contains no 0x00 (the delimiter is not appended).

    Canonical COBS: a run of 254 non-zero bytes that ends the data is not
    followed by an extra ``0x01`` code.
    """
    out = bytearray(b"\x00")  # placeholder for the first code byte
    code_index = 0
    code = 1
    last = len(data) - 1
    for i, b in enumerate(data):
        if b == 0:
            out[code_index] = code
            code_index = len(out)
            out.append(0)
            code = 1
            continue
        out.append(b)
        code += 1
        if code == 0xFF:
            out[code_index] = code
            if i == last:
                return bytes(out)
            code_index = len(out)
            out.append(0)
            code = 1
    out[code_index] = code
    return bytes(out)


def cobs_decode(block: bytes) -> bytes:
    """Decode one COBS block (without its 0x00 delimiter).

    Raises:
        CobsError: if the block contains a zero byte or a code runs past its end.
    """
    out = bytearray()
    i = 0
    n = len(block)
    while i < n:
        code = block[i]
        if code == 0:
            raise CobsError(f"zero byte at offset {i} inside a COBS block")
        end = i + code
        if end > n:
            raise CobsError(f"COBS code {code} at offset {i} runs past the end of a {n}-byte block")
        chunk = block[i + 1 : end]
        if 0 in chunk:
            raise CobsError(f"zero byte inside a COBS block near offset {i}")
        out += chunk
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)
