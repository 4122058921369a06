"""The golden frames of PROTOCOL.md section 2.3 decode identically in the firmware's C codec and in Python.

Python decodes with ``struct`` per the page (section 3, version 2) and the framing of ``firmware_bridge.cobs`` and
``firmware_bridge.crc``; C decodes with the firmware's own ``wire.c`` (the ``wirecat`` tool). A version-1 FIRE
(24-byte payload) is not a version-2 FIRE in either.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from firmware_bridge.cobs import cobs_decode, cobs_encode
from firmware_bridge.crc import crc16_ccitt

FIRMWARE = Path(__file__).resolve().parents[3] / "firmware"

LAYOUTS = {
    0x10: ("<IHHqqH", ("command_id", "valve_first", "valve_last", "open_count", "close_count", "epoch")),
    0x11: ("<IiiqH", ("command_id", "x_um", "y_um", "pick_count", "epoch")),
    0x13: ("<I", ("value",)),
    0x14: ("<I", ("value",)),
    0x80: ("<HIB", ("acked_seq", "command_id", "code")),
    0x81: ("<QQqIH", ("host_time_ns", "device_time_us", "encoder_count", "boot_id", "epoch")),
    0x82: ("<HIB", ("acked_seq", "command_id", "code")),
    0x83: ("<Iqq", ("command_id", "open_count", "close_count")),
    0x85: ("<BBBxHHHqIIIIIIIH", ("version", "flags", "fault_code", "valve_count", "queue_len", "queue_capacity",
                                 "encoder_count", "executed", "late", "rejected", "bad_frames", "watchdog_trips",
                                 "session_id", "boot_id", "epoch")),
    0x87: ("<IHq", ("boot_id", "epoch", "encoder_count")),
}

GOLDEN = [  # (fields the page gives, bytes on the wire)
    ({"command_id": 7, "valve_first": 12, "valve_last": 15, "open_count": 100000, "close_count": 100450, "epoch": 1},
     "03 10 03 02 07 01 01 02 0c 02 0f 04 a0 86 01 01 01 01 01 04 62 88 01 01 01 01 01 02 01 03 c1 9f 00"),
    ({"command_id": 8, "x_um": 250000, "y_um": -1500, "pick_count": 200000, "epoch": 1},
     "03 11 04 02 08 01 01 04 90 d0 03 08 24 fa ff ff 40 0d 03 01 01 01 01 02 01 03 70 57 00"),
    ({"value": 1}, "03 13 01 02 01 01 01 03 23 2d 00"),
    ({"value": 0x12345678}, "03 14 01 07 78 56 34 12 29 92 00"),
    ({"acked_seq": 3, "command_id": 7, "code": 0}, "03 80 09 02 03 02 07 01 01 01 03 87 78 00"),
    ({"acked_seq": 3, "command_id": 7, "code": 1}, "03 82 0a 02 03 02 07 01 01 04 01 68 9b 00"),
    ({"command_id": 7, "open_count": 100000, "close_count": 100450},
     "03 83 0b 02 07 01 01 04 a0 86 01 01 01 01 01 04 62 88 01 01 01 01 01 03 9f 52 00"),
    ({"acked_seq": 3, "command_id": 7, "code": 9}, "03 82 0c 02 03 02 07 01 01 04 09 e8 40 00"),
    ({"host_time_ns": 123456789, "device_time_us": 4000000, "encoder_count": 100123, "boot_id": 0xCAFEF00D,
      "epoch": 1},
     "03 81 0d 05 15 cd 5b 07 01 01 01 01 03 09 3d 01 01 01 01 04 1b 87 01 01 01 01 01 06 0d f0 fe ca 01 03 04 61 00"),
    ({"boot_id": 0xCAFEF00D, "epoch": 2, "encoder_count": 0},
     "03 87 0e 06 0d f0 fe ca 02 01 01 01 01 01 01 01 01 03 38 02 00"),
    ({"version": 2, "flags": 9, "fault_code": 0, "valve_count": 64, "queue_len": 2, "queue_capacity": 256,
      "encoder_count": 100123, "executed": 10, "late": 1, "rejected": 0, "bad_frames": 0, "watchdog_trips": 0,
      "session_id": 0x12345678, "boot_id": 0xCAFEF00D, "epoch": 1},
     "03 85 0f 03 02 09 01 02 40 02 02 01 05 01 1b 87 01 01 01 01 01 02 0a 01 01 02 01 01 01 01 01 01 01 01 01 01 "
     "01 01 01 01 01 0a 78 56 34 12 0d f0 fe ca 01 03 b8 bc 00"),
]


def python_decode(wire: bytes) -> dict[str, object]:
    body = cobs_decode(wire[:-1])
    assert crc16_ccitt(body[:-2]) == struct.unpack("<H", body[-2:])[0]
    t, seq = struct.unpack_from("<BH", body)
    payload = body[3:-2]
    out: dict[str, object] = {"type": t, "seq": seq, "length": len(payload)}
    fmt, names = LAYOUTS[t]
    if len(payload) == struct.calcsize(fmt):
        out["fields"] = dict(zip(names, struct.unpack(fmt, payload), strict=True))
    return out


def c_decode(wirecat: Path, frames: list[bytes]) -> list[dict[str, object]]:
    run = subprocess.run([str(wirecat)], input="".join(f.hex(" ") + "\n" for f in frames), capture_output=True,
                         text=True, timeout=60, check=True)
    return [json.loads(line) for line in run.stdout.splitlines()]


@pytest.fixture(scope="module")
def wirecat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("make and a C compiler are needed to build the firmware's wire decoder")
    out = tmp_path_factory.mktemp("fw")
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), f"BUILD={out}", f"{out}/wirecat"], check=True,
                   capture_output=True, timeout=300)
    return out / "wirecat"


def test_golden_frames_decode_identically_in_c_and_python(wirecat: Path) -> None:
    frames = [bytes.fromhex(h) for _f, h in GOLDEN]
    for (fields, _h), frame, c in zip(GOLDEN, frames, c_decode(wirecat, frames), strict=True):
        py = python_decode(frame)
        assert c == py
        assert py["fields"] == fields  # and both are what the page says


def test_python_encodes_the_golden_frames() -> None:
    for (fields, h), seq in zip(GOLDEN, (3, 4, 1, 1, 9, 10, 11, 12, 13, 14, 15), strict=True):
        t = python_decode(bytes.fromhex(h))["type"]
        assert isinstance(t, int)
        fmt, names = LAYOUTS[t]
        head = struct.pack("<BH", t, seq) + struct.pack(fmt, *(fields[n] for n in names))
        assert cobs_encode(head + struct.pack("<H", crc16_ccitt(head))) + b"\x00" == bytes.fromhex(h)


def test_a_version1_fire_is_not_a_version2_fire(wirecat: Path) -> None:
    head = struct.pack("<BHIHHqq", 0x10, 3, 7, 12, 15, 100000, 100450)  # version 1: no epoch
    frame = cobs_encode(head + struct.pack("<H", crc16_ccitt(head))) + b"\x00"
    (c,) = c_decode(wirecat, [frame])
    assert c == {"type": 0x10, "seq": 3, "length": 24}  # no fields: the firmware answers it MALFORMED
    assert "fields" not in python_decode(frame)


def test_damaged_frames_are_refused_by_the_c_decoder(wirecat: Path) -> None:
    good = bytearray(bytes.fromhex(GOLDEN[2][1]))
    crc_bad = bytes(good[:1]) + bytes([good[1] ^ 0x01]) + bytes(good[2:])  # the type byte
    cobs_bad = bytes([0x09]) + bytes(good[1:])
    truncated = bytes([0x03, 0x13, 0x01, 0x00])
    assert [r["error"] for r in c_decode(wirecat, [crc_bad, cobs_bad, truncated])] == ["crc", "cobs", "truncated"]
