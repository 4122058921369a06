"""Modbus framing and the register map: CRC-16/MODBUS against published vectors, MBAP against Wireshark.

Data: ``../shared/data/modbus`` (see its MANIFEST.md): framing vectors from
node-modbus/stream and pymodbus tests, real Modbus/TCP captures with tshark's
field-by-field decode.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import registers as rmap
from firmware_bridge.crc import crc16_modbus
from firmware_bridge.messages import Fire, Pick
from firmware_bridge.modbus_wire import MbapError, build_mbap, build_rtu, parse_mbap_stream, rtu_crc_ok

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "modbus"
VECTORS = DATA / "modbus_framing_vectors.json"
DECODES = sorted((DATA / "reference_decodes").glob("*.tshark.tsv"))


def _vectors() -> dict[str, Any]:
    if not VECTORS.exists():
        pytest.fail(f"Modbus test data missing: {VECTORS} (see ../shared/data/MANIFEST.md)")
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def _hex(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


def test_crc16_modbus_check_value() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37


def test_rtu_crc_matches_every_published_vector() -> None:
    v = _vectors()
    frames = [_hex(e["rtu_frame_hex"]) for e in v["node_modbus_stream_spec_examples"]]
    frames += [_hex(e["rtu_hex"]) for e in v["pymodbus_framer_table"]]
    frames += [_hex(e["frame_hex"]) for e in v["real_rtu_frames_from_bus_monitor_readme"]]
    assert len(frames) >= 15
    for f in frames:
        assert rtu_crc_ok(f), f.hex(" ")
        assert crc16_modbus(f[:-2]).to_bytes(2, "little") == f[-2:]
        broken = bytearray(f)
        broken[1] ^= 0x01
        assert not rtu_crc_ok(bytes(broken))


def test_build_rtu_and_mbap_reproduce_the_vectors() -> None:
    v = _vectors()
    for e in v["node_modbus_stream_spec_examples"]:
        assert build_rtu(e["slave_id"], _hex(e["pdu_hex"])) == _hex(e["rtu_frame_hex"])
    for e in v["pymodbus_framer_table"]:
        assert build_rtu(e["device_id"], _hex(e["pdu_hex"])) == _hex(e["rtu_hex"])
        assert build_mbap(0, e["device_id"], _hex(e["pdu_hex"])) == _hex(e["tcp_mbap_tid0_hex"])


def _ints(field: str) -> list[int]:
    return [int(x) for x in field.split(",")] if field else []


@pytest.mark.parametrize("path", DECODES, ids=lambda p: p.name.split(".")[0])
def test_mbap_parser_agrees_with_wireshark(path: Path) -> None:
    """Every TCP payload of the real captures: transaction, protocol, length, unit, function, exception."""
    checked = 0
    with path.open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            payload = bytes.fromhex(row["tcp.payload"]) if row["tcp.payload"] else b""
            want_tid = _ints(row["mbtcp.trans_id"])
            if not payload or not want_tid:
                continue
            try:
                adus, _rest = parse_mbap_stream(payload)
            except MbapError:
                # a length Wireshark could not use either: it must have flagged the frame
                assert "Malformed" in row["_ws.expert.message"], row["frame.number"]
                continue
            n = len(want_tid)
            assert [a.transaction_id for a in adus[:n]] == want_tid, row["frame.number"]
            assert [a.protocol_id for a in adus[:n]] == _ints(row["mbtcp.prot_id"])
            assert [a.length for a in adus[:n]] == _ints(row["mbtcp.len"])
            assert [a.unit_id for a in adus[:n]] == _ints(row["mbtcp.unit_id"])
            funcs = _ints(row["modbus.func_code"])
            if funcs:
                assert [a.function_code for a in adus[: len(funcs)]] == funcs, row["frame.number"]
            excs = _ints(row["modbus.exception_code"])
            if excs:
                assert [a.exception_code for a in adus if a.is_exception][: len(excs)] == excs
            checked += 1
    assert checked > 0


def test_mbap_stream_keeps_incomplete_tail_and_rejects_bad_length() -> None:
    a = build_mbap(5, 1, bytes.fromhex("0300000002"))
    adus, rest = parse_mbap_stream(a + a[:7])
    assert [x.transaction_id for x in adus] == [5]
    assert rest == a[:7]
    with pytest.raises(MbapError):
        parse_mbap_stream(bytes.fromhex("000100000000ff03"))


# ------------------------------------------------------------- register map


def test_register_map_layout_does_not_overlap() -> None:
    assert rmap.HEADER_SIZE <= rmap.REG_HEARTBEAT < rmap.STATE_BASE
    assert rmap.STATE_BASE + rmap.SLOT_COUNT == rmap.POLL_SIZE <= 125  # one FC3 read
    assert rmap.POLL_SIZE <= rmap.SLOT_BASE
    assert rmap.SLOT_WRITE_SIZE + rmap.SLOT_READ_SIZE == rmap.SLOT_SIZE
    assert rmap.MAP_SIZE == rmap.SLOT_BASE + rmap.SLOT_COUNT * rmap.SLOT_SIZE
    assert rmap.slot_of(70) == 6 and rmap.slot_address(6) == 200 + 6 * 24


def test_fire_slot_golden_registers() -> None:
    """The example of PROTOCOL.md section 6.4."""
    regs = rmap.encode_slot(Fire(70, 12, 15, 100000, 100450), 1)
    assert regs == [0, 70, 1, 12, 15, 0, 0, 0x0001, 0x86A0, 0, 0, 0x0001, 0x8862, 1]  # epoch 1 at offset 13


i64 = st.integers(-(2**63), 2**63 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 0xFFFF)


@given(st.one_of(st.builds(Fire, u32, u16, u16, i64, i64), st.builds(Pick, u32, i32, i32, i64)))
def test_slot_round_trip(cmd: Fire | Pick) -> None:
    regs = rmap.encode_slot(cmd, 7)
    assert len(regs) == rmap.SLOT_WRITE_SIZE and regs[rmap.SLOT_EPOCH] == 7
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert rmap.decode_slot(regs) == cmd


@given(i64, i64)
def test_slot_result_round_trip(a: int, b: int) -> None:
    r = rmap.SlotResult(rmap.SlotState.EXECUTED, 0, a, b)
    assert rmap.SlotResult.from_regs(r.to_regs()) == r


def test_unknown_slot_states_and_reasons_are_named_not_refused() -> None:
    r = rmap.SlotResult.from_regs([77, 23] + [0] * 8)
    assert (r.state, r.reason) == (77, 23)
    assert rmap.describe(rmap.SlotState, r.state) == "unknown(77)"
    assert rmap.describe(rmap.SlotState, 6) == "DROPPED"


def test_header_carries_boot_id_and_epoch() -> None:
    regs = [0] * rmap.POLL_SIZE
    regs[rmap.REG_BOOT_ID : rmap.REG_BOOT_ID + 2] = [0xCAFE, 0xF00D]
    regs[rmap.REG_EPOCH] = 3
    h = rmap.Header.from_regs(regs)
    assert (h.boot_id, h.epoch) == (0xCAFEF00D, 3)
    assert h.to_regs()[rmap.REG_BOOT_ID : rmap.REG_BOOT_ID + 2] == [0xCAFE, 0xF00D]


def test_decode_slot_refuses_unknown_kind() -> None:
    regs = rmap.encode_slot(Fire(1, 0, 0, 1, 2), 1)
    regs[2] = 9
    assert rmap.decode_slot(regs) is None


def test_fc23_slot_write_golden_adu() -> None:
    """The request and answer printed in PROTOCOL.md section 6.4, rebuilt from the register map."""
    cmd = Fire(70, 12, 15, 100000, 100450)
    base = rmap.slot_address(rmap.slot_of(cmd.command_id))
    regs = rmap.encode_slot(cmd, 1)
    pdu = bytes([23]) + (base + rmap.SLOT_STATE).to_bytes(2, "big") + rmap.SLOT_READ_SIZE.to_bytes(2, "big")
    pdu += base.to_bytes(2, "big") + len(regs).to_bytes(2, "big") + bytes([2 * len(regs)])
    pdu += b"".join(r.to_bytes(2, "big") for r in regs)
    request = _hex(
        "00 01 00 00 00 27 01 17 01 66 00 0a 01 58 00 0e 1c 00 00 00 46 00 01 00 0c 00 0f "
        "00 00 00 00 00 01 86 a0 00 00 00 00 00 01 88 62 00 01"
    )
    assert build_mbap(1, 1, pdu) == request
    assert build_rtu(1, pdu)[-2:] == _hex("a9 a2")
    answer = _hex("00 01 00 00 00 17 01 17 14 00 01" + " 00" * 18)
    (adu,), rest = parse_mbap_stream(answer)
    assert rest == b"" and adu.function_code == 23 and adu.pdu[1] == 20
    words = [int.from_bytes(adu.pdu[2 + 2 * i : 4 + 2 * i], "big") for i in range(rmap.SLOT_READ_SIZE)]
    assert rmap.SlotResult.from_regs(words) == rmap.SlotResult(rmap.SlotState.QUEUED, 0, 0, 0)
