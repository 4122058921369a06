"""Serial-link codec: CRC, COBS and frames against golden bytes; round trips and garbage with hypothesis."""

from __future__ import annotations

import binascii
import re
import struct
from enum import IntEnum
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.cobs import CobsError, cobs_decode, cobs_encode
from firmware_bridge.codec import (
    MAX_ENCODED,
    DecodedFrame,
    FrameDecoder,
    FrameError,
    FrameErrorKind,
    decode_body,
    encode_body,
    encode_frame,
)
from firmware_bridge.crc import crc16_ccitt
from firmware_bridge.messages import (
    LAYOUTS,
    STATUS_V1_PAYLOAD,
    Ack,
    Arm,
    Cancel,
    Disarm,
    Epoch,
    Fault,
    FaultCode,
    Fire,
    Fired,
    Heartbeat,
    Message,
    MsgType,
    Nak,
    NakReason,
    Pick,
    Picked,
    Ping,
    Pong,
    Status,
    StatusRequest,
    enum_name,
    flag_names,
    next_epoch,
)

# ------------------------------------------------------------------ CRC


def test_crc16_ccitt_check_value() -> None:
    # the catalogue check value of CRC-16/CCITT-FALSE
    assert crc16_ccitt(b"123456789") == 0x29B1
    assert crc16_ccitt(b"") == 0xFFFF
    assert crc16_ccitt(b"\x10\x03\x00") == binascii.crc_hqx(b"\x10\x03\x00", 0xFFFF)


# ----------------------------------------------------------------- COBS

# Examples of the COBS article (Cheshire & Baker) as listed on Wikipedia's COBS page.
COBS_VECTORS = [
    ("00", "0101"),
    ("0000", "010101"),
    ("001100", "01021101"),
    ("11220033", "0311220233"),
    ("11223344", "0511223344"),
    ("11000000", "0211010101"),
    (bytes(range(1, 255)).hex(), "ff" + bytes(range(1, 255)).hex()),
    (bytes(range(0, 255)).hex(), "01ff" + bytes(range(1, 255)).hex()),
    (bytes(range(1, 256)).hex(), "ff" + bytes(range(1, 255)).hex() + "02ff"),
    (bytes(range(2, 256)).hex() + "00", "ff" + bytes(range(2, 256)).hex() + "0101"),
    (bytes(range(3, 256)).hex() + "0001", "fe" + bytes(range(3, 256)).hex() + "0201"),
]


@pytest.mark.parametrize(("raw", "encoded"), COBS_VECTORS)
def test_cobs_golden(raw: str, encoded: str) -> None:
    assert cobs_encode(bytes.fromhex(raw)).hex() == encoded
    assert cobs_decode(bytes.fromhex(encoded)).hex() == raw


@pytest.mark.parametrize("bad", ["00", "0311", "02110022", "05112233"])
def test_cobs_rejects_invalid(bad: str) -> None:
    with pytest.raises(CobsError):
        cobs_decode(bytes.fromhex(bad))


@given(st.binary(max_size=700))
def test_cobs_round_trip_has_no_zero(data: bytes) -> None:
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + 1 + len(data) // 254
    assert cobs_decode(enc) == data


# --------------------------------------------------------------- frames

# Golden frames, also printed in PROTOCOL.md section 2.3 for firmware authors (protocol version 2).
GOLDEN = [
    (Fire(7, 12, 15, 100000, 100450, 1), 3, "03100302070101020c020f04a08601010101010462880101010101020103c19f00"),
    (Pick(8, 250000, -1500, 200000, 1), 4, "031104020801010490d0030824faffff400d0301010101020103705700"),
    (Heartbeat(1), 1, "0313010201010103232d00"),
    (Arm(0x12345678), 1, "0314010778563412299200"),
    (Ack(3, 7, 0), 9, "0380090203020701010103877800"),
    (Nak(3, 7, 1), 10, "03820a0203020701010401689b00"),
    (Fired(7, 100000, 100450), 11, "03830b0207010104a08601010101010462880101010101039f5200"),
    (Nak(3, 7, 9), 12, "03820c0203020701010409e84000"),
    (
        Pong(123456789, 4000000, 100123, 0xCAFEF00D, 1),
        13,
        "03810d0515cd5b070101010103093d01010101041b870101010101060df0feca0103046100",
    ),
    (Epoch(0xCAFEF00D, 2, 0), 14, "03870e060df0feca02010101010101010103380200"),
    (
        Status(2, 9, 0, 64, 2, 256, 100123, 10, 1, 0, 0, 0, 0x12345678, 0xCAFEF00D, 1),
        15,
        "03850f03020901024002020105011b870101010101020a0101020101010101010101010101010101010a785634120df0feca0103b8bc00",
    ),
]


@pytest.mark.parametrize(("message", "seq", "wire"), GOLDEN)
def test_golden_frames(message: Message, seq: int, wire: str) -> None:
    assert encode_frame(message, seq).hex() == wire
    frames = FrameDecoder().feed(bytes.fromhex(wire))
    assert frames == [DecodedFrame(seq, message)]


def test_golden_fire_layout_by_hand() -> None:
    """The FIRE golden frame rebuilt from the specification's table, without the codec."""
    payload = struct.pack("<IHHqqH", 7, 12, 15, 100000, 100450, 1)
    head = bytes([0x10]) + (3).to_bytes(2, "little") + payload
    body = head + binascii.crc_hqx(head, 0xFFFF).to_bytes(2, "little")
    assert body == encode_body(Fire(7, 12, 15, 100000, 100450, 1), 3)
    assert cobs_encode(body) + b"\x00" == bytes.fromhex(GOLDEN[0][2])


# hypothesis strategies: every message with fields in their wire ranges
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
i32 = st.integers(-(2**31), 2**31 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)

MESSAGES = st.one_of(
    st.builds(Fire, u32, u16, u16, i64, i64, u16),
    st.builds(Pick, u32, i32, i32, i64, u16),
    st.builds(Cancel, u32),
    st.builds(Heartbeat, u32),
    st.builds(Arm, u32),
    st.builds(StatusRequest),
    st.builds(Ping, u64),
    st.builds(Disarm),
    st.builds(Ack, u16, u32, u8),
    st.builds(Pong, u64, u64, i64, u32, u16),
    st.builds(Nak, u16, u32, u8),
    st.builds(Fired, u32, i64, i64),
    st.builds(Picked, u32, i64),
    st.builds(Status, u8, u8, u8, u16, u16, u16, i64, u32, u32, u32, u32, u32, u32, u32, u16),
    st.builds(Fault, u8, i64),
    st.builds(Epoch, u32, u16, i64),
)


def test_every_message_type_has_a_strategy() -> None:
    # the strategy list above must cover the whole protocol
    assert len(LAYOUTS) == 16


@settings(max_examples=300)
@given(st.lists(st.tuples(MESSAGES, u16), min_size=1, max_size=8), st.lists(st.integers(1, 40), max_size=20))
def test_round_trip_in_any_chunking(items: list[tuple[Message, int]], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(m, s) for m, s in items)
    dec = FrameDecoder()
    out = []
    i = 0
    for c in cuts:
        out += dec.feed(stream[i : i + c])
        i += c
    out += dec.feed(stream[i:])
    assert out == [DecodedFrame(s, m) for m, s in items]


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_garbage_never_raises_and_decoder_resyncs(garbage: bytes) -> None:
    dec = FrameDecoder()
    results = dec.feed(garbage)
    assert all(isinstance(r, DecodedFrame | FrameError) for r in results)
    # after any garbage, a delimiter and a good frame, the frame comes through
    good = Fire(1, 0, 3, 10, 20)
    tail = dec.feed(b"\x00" + encode_frame(good, 42))
    assert tail[-1] == DecodedFrame(42, good)


@settings(max_examples=300)
@given(MESSAGES, u16, st.data())
def test_single_bit_error_is_always_detected(message: Message, seq: int, data: st.DataObject) -> None:
    body = bytearray(encode_body(message, seq))
    bit = data.draw(st.integers(0, len(body) * 8 - 1))
    body[bit // 8] ^= 1 << (bit % 8)
    r = decode_body(bytes(body))
    assert isinstance(r, FrameError)
    assert r.kind == FrameErrorKind.BAD_CRC


def test_truncated_frame_is_an_error_and_next_frame_survives() -> None:
    frame = encode_frame(Fire(9, 1, 2, 1000, 1200), 5)
    dec = FrameDecoder()
    out = dec.feed(frame[:10] + b"\x00" + frame)
    assert isinstance(out[0], FrameError)
    assert out[0].kind in (FrameErrorKind.BAD_CRC, FrameErrorKind.COBS, FrameErrorKind.TRUNCATED)
    assert out[1] == DecodedFrame(5, Fire(9, 1, 2, 1000, 1200))
    assert dec.feed(b"\x02\x10\x00") == [FrameError(FrameErrorKind.TRUNCATED, size=1)]


def test_unknown_type_and_bad_length_keep_their_sequence_number() -> None:
    head = bytes([0x55]) + (77).to_bytes(2, "little") + b"\x01\x02"
    unknown = cobs_encode(head + crc16_ccitt(head).to_bytes(2, "little")) + b"\x00"
    head2 = bytes([0x12]) + (78).to_bytes(2, "little") + b"\x01\x02"  # CANCEL needs 4 bytes
    short = cobs_encode(head2 + crc16_ccitt(head2).to_bytes(2, "little")) + b"\x00"
    out = FrameDecoder().feed(unknown + short)
    assert out == [
        FrameError(FrameErrorKind.UNKNOWN_TYPE, seq=77, type_byte=0x55, size=7),
        FrameError(FrameErrorKind.BAD_LENGTH, seq=78, type_byte=0x12, size=7),
    ]


def test_endless_noise_is_bounded_and_reported_once() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"\x01" * (MAX_ENCODED * 50)) == []
    assert len(dec._buf) <= MAX_ENCODED
    assert dec.feed(b"\x00") == [FrameError(FrameErrorKind.OVERSIZE, size=MAX_ENCODED * 50)]


@pytest.mark.parametrize(
    "bad",
    [Fire(-1, 0, 0, 0, 1), Fire(1, 70000, 0, 0, 1), Fire(1, 0, 0, 2**63, 1), Ack(1, 1, 256), Pick(1, 2**31, 0, 0)],
)
def test_out_of_range_fields_are_refused_by_the_encoder(bad: Message) -> None:
    with pytest.raises(ValueError, match="wire layout"):
        encode_frame(bad, 1)


def test_sequence_number_range() -> None:
    with pytest.raises(ValueError, match="sequence"):
        encode_frame(Heartbeat(1), 65536)


def test_golden_frames_are_the_ones_printed_in_the_protocol_page() -> None:
    """Every golden frame of the table in PROTOCOL.md section 2.3 is one of ours, byte for byte."""
    page = (Path(__file__).parents[3] / "firmware_bridge" / "PROTOCOL.md").read_text(encoding="utf-8")
    printed = {m.replace(" ", "") for m in re.findall(r"\| `((?:[0-9a-f]{2} )+00)` \|", page)}
    assert printed == {wire for _m, _s, wire in GOLDEN}


def test_version_1_status_is_a_length_error_not_a_status() -> None:
    """A version-1 controller's 42-byte STATUS is refused as a bad length (the host then names the version)."""
    head = bytes([0x85]) + (1).to_bytes(2, "little") + bytes([1]) + bytes(41)
    frame = cobs_encode(head + crc16_ccitt(head).to_bytes(2, "little")) + b"\x00"
    (r,) = FrameDecoder().feed(frame)
    assert isinstance(r, FrameError) and r.kind == FrameErrorKind.BAD_LENGTH and r.type_byte == 0x85
    assert r.size - 5 == STATUS_V1_PAYLOAD


@pytest.mark.parametrize(
    ("enum", "value", "name"),
    [(NakReason, 9, "WRONG_EPOCH"), (NakReason, 23, "unknown(23)"), (FaultCode, 9, "unknown(9)"), (MsgType, 0x87, "EPOCH")],
)
def test_unknown_enum_values_have_a_name_never_an_exception(enum: type[IntEnum], value: int, name: str) -> None:
    assert enum_name(enum, value) == name


def test_flag_names_show_unknown_bits() -> None:
    assert flag_names(0x09) == "ARMED|ENCODER_OK"
    assert flag_names(0x41) == "ARMED|unknown(0x40)"
    assert flag_names(0) == "none"


def test_unknown_nak_reason_decodes_as_a_number() -> None:
    (r,) = FrameDecoder().feed(encode_frame(Nak(3, 7, 23), 4))
    assert r == DecodedFrame(4, Nak(3, 7, 23))


def test_epoch_wraps_skipping_zero() -> None:
    assert next_epoch(1) == 2 and next_epoch(0xFFFF) == 1
