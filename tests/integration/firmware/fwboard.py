"""Drive the reference firmware on its emulated board (``firmware/``): build it, start ``sorter-board``, speak
protocol version 2 to it and read its event log.

The frames are built here from ``PROTOCOL.md`` section 3 with ``struct`` and the framing of
``firmware_bridge.cobs``/``firmware_bridge.crc``, because ``firmware_bridge.codec`` still speaks version 1; when it
speaks version 2, ``encode``/``decode`` can be replaced by it.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.cobs import CobsError, cobs_decode, cobs_encode
from firmware_bridge.crc import crc16_ccitt

ROOT = Path(__file__).resolve().parents[3]
FIRMWARE_DIR = ROOT / "firmware"
F_CPU_HZ = 16_000_000

# type byte -> (name, payload layout, field names), PROTOCOL.md section 3 (version 2)
MESSAGES: dict[int, tuple[str, struct.Struct, tuple[str, ...]]] = {
    0x10: ("FIRE", struct.Struct("<IHHqqH"), ("command_id", "valve_first", "valve_last", "open_count", "close_count", "epoch")),
    0x11: ("PICK", struct.Struct("<IiiqH"), ("command_id", "x_um", "y_um", "pick_count", "epoch")),
    0x12: ("CANCEL", struct.Struct("<I"), ("command_id",)),
    0x13: ("HEARTBEAT", struct.Struct("<I"), ("counter",)),
    0x14: ("ARM", struct.Struct("<I"), ("session_id",)),
    0x15: ("STATUS_REQUEST", struct.Struct("<"), ()),
    0x16: ("PING", struct.Struct("<Q"), ("host_time_ns",)),
    0x17: ("DISARM", struct.Struct("<"), ()),
    0x80: ("ACK", struct.Struct("<HIB"), ("acked_seq", "command_id", "result")),
    0x81: ("PONG", struct.Struct("<QQqIH"), ("host_time_ns", "device_time_us", "encoder_count", "boot_id", "epoch")),
    0x82: ("NAK", struct.Struct("<HIB"), ("acked_seq", "command_id", "reason")),
    0x83: ("FIRED", struct.Struct("<Iqq"), ("command_id", "open_count", "close_count")),
    0x84: ("PICKED", struct.Struct("<Iq"), ("command_id", "pick_count")),
    0x85: ("STATUS", struct.Struct("<BBBxHHHqIIIIIIIH"), (
        "version", "flags", "fault_code", "valve_count", "queue_len", "queue_capacity", "encoder_count", "executed",
        "late", "rejected", "bad_frames", "watchdog_trips", "session_id", "boot_id", "epoch")),
    0x86: ("FAULT", struct.Struct("<Bq"), ("fault_code", "encoder_count")),
    0x87: ("EPOCH", struct.Struct("<IHq"), ("boot_id", "epoch", "encoder_count")),
}
TYPE_OF = {name: t for t, (name, _s, _f) in MESSAGES.items()}

ACK_QUEUED, ACK_DUPLICATE, ACK_CANCELLED, ACK_UNKNOWN_ID, ACK_DONE, ACK_OK = range(6)
NAK_LATE, NAK_QUEUE_FULL, NAK_BAD_CRC, NAK_BAD_FIELD, NAK_UNKNOWN_TYPE = 1, 2, 3, 4, 5
NAK_NOT_ARMED, NAK_MALFORMED, NAK_CONFLICT, NAK_WRONG_EPOCH = 6, 7, 8, 9
FLAG_ARMED, FLAG_FAULTED, FLAG_VALVES_OPEN, FLAG_ENCODER_OK = 1, 2, 4, 8
FAULT_WATCHDOG = 1
SEQ_NONE = 0xFFFF


@dataclass(frozen=True)
class Frame:
    """A decoded frame: its type name, sequence number and fields."""

    name: str
    seq: int
    fields: dict[str, int]

    def __getitem__(self, key: str) -> int:
        return self.fields[key]


def encode_body(type_byte: int, seq: int, payload: bytes) -> bytes:
    head = struct.pack("<BH", type_byte, seq) + payload
    return head + struct.pack("<H", crc16_ccitt(head))


def encode_raw(type_byte: int, seq: int, payload: bytes) -> bytes:
    """Any type byte and payload, framed (valid CRC): for unknown types and wrong lengths."""
    return cobs_encode(encode_body(type_byte, seq, payload)) + b"\x00"


def encode(name: str, seq: int, **fields: int) -> bytes:
    """One frame of protocol version 2 for the wire, delimiter included."""
    t = TYPE_OF[name]
    _n, layout, names = MESSAGES[t]
    return encode_raw(t, seq, layout.pack(*(fields[k] for k in names)))


def decode_block(block: bytes) -> Frame | str:
    """Decode the bytes between two delimiters: a Frame, or why not ("cobs", "truncated", "crc", "type", "length")."""
    try:
        body = cobs_decode(block)
    except CobsError:
        return "cobs"
    if len(body) < 5:
        return "truncated"
    if crc16_ccitt(body[:-2]) != struct.unpack("<H", body[-2:])[0]:
        return "crc"
    t, seq = struct.unpack_from("<BH", body)
    if t not in MESSAGES:
        return "type"
    name, layout, names = MESSAGES[t]
    payload = body[3:-2]
    if len(payload) != layout.size:
        return "length"
    return Frame(name, seq, dict(zip(names, layout.unpack(payload), strict=True)))


class FrameReader:
    """Splits a byte stream into frames at the 0x00 delimiters."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame | str]:
        out: list[Frame | str] = []
        for b in data:
            if b:
                self._buf.append(b)
            elif self._buf:
                out.append(decode_block(bytes(self._buf)))
                self._buf.clear()
        return out


# ---------------------------------------------------------------------------- building


def tools_missing() -> str:
    """Why the firmware cannot be built here ("" when it can)."""
    for tool in ("avr-gcc", "avr-objcopy", "avr-size", "make", "cc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install gcc-avr avr-libc simavr libsimavr-dev libelf-dev)"
    if not Path("/usr/include/simavr/sim_avr.h").exists() and subprocess.run(
        ["pkg-config", "--exists", "simavr"], check=False).returncode != 0:
        return "the simavr headers are not installed (apt-get install libsimavr-dev)"
    return ""


@dataclass(frozen=True)
class Build:
    """Paths of the built firmware and tools."""

    elf: Path
    board: Path
    wirecat: Path


def build(build_dir: Path | None = None) -> Build:
    """``make -C firmware avr board`` (and the wire decoder); returns the paths."""
    out = build_dir or FIRMWARE_DIR / "build"
    subprocess.run(["make", "-s", "-C", str(FIRMWARE_DIR), f"BUILD={out}", "avr", "board", f"{out}/wirecat"],
                   check=True, capture_output=True, text=True, timeout=300)
    return Build(out / "valve-controller.elf", out / "sorter-board", out / "wirecat")


# ---------------------------------------------------------------------------- the board process


def load_events(path: Path) -> list[dict[str, Any]]:
    """The board's event log (complete lines only)."""
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                events.append(json.loads(line))
    return events


@dataclass
class Board:
    """A running ``sorter-board`` process (one emulated MCU), started and stopped by its owner."""

    build: Build
    workdir: Path
    profile: str = "0"
    seed: int = 1
    pty: bool = True
    script: Path | None = None
    eeprom: bool = True
    extra: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    pty_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "board.jsonl"
        self.pty_path = self.workdir / "ttyBOARD"

    def command(self) -> list[str]:
        cmd = [str(self.build.board), str(self.build.elf), "--profile", self.profile, "--seed", str(self.seed),
               "--log", str(self.log_path), *self.extra]
        if self.eeprom:
            cmd += ["--eeprom", str(self.workdir / "eeprom.bin")]
        if self.pty:
            cmd += ["--pty", str(self.pty_path)]
        if self.script is not None:
            cmd += ["--script", str(self.script)]
        return cmd

    def start(self, timeout_s: float = 10.0) -> Board:
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        while line and not line.startswith("ready"):  # simavr prints what it loaded first
            line = self.proc.stdout.readline().decode()
        if not line.startswith("ready"):
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError(f"sorter-board did not start: {line!r} {err}")
        deadline = time.monotonic() + timeout_s
        while self.pty and not self.pty_path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"sorter-board did not create {self.pty_path}")
            time.sleep(0.01)
        return self

    def control(self, line: str) -> None:
        """A harness command: reset, power, zero, speed CPS, glitch N, mark LABEL, quit."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def stop(self) -> int:
        """Ask it to quit; kill it if it does not. Returns its exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            try:
                self.control("quit")
                self.proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode

    def events(self, ev: str | None = None) -> list[dict[str, Any]]:
        events = load_events(self.log_path) if self.log_path.exists() else []
        return [e for e in events if ev is None or e.get("ev") == ev]

    def __enter__(self) -> Board:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- scripts (deterministic runs)


class Script:
    """A timed input for ``sorter-board --script``: frames and commands at emulated times (microseconds)."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self._seq = 0

    def next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 0xFFFF
        return seq

    def tx(self, t_us: float, data: bytes) -> None:
        self.lines.append((t_us, "tx " + data.hex()))

    def send(self, t_us: float, name: str, **fields: int) -> int:
        seq = self.next_seq()
        self.tx(t_us, encode(name, seq, **fields))
        return seq

    def command(self, t_us: float, line: str) -> None:
        self.lines.append((t_us, line))

    def write(self, path: Path) -> Path:
        self.lines.sort(key=lambda x: x[0])
        with open(path, "w", encoding="utf-8") as f:
            for t, line in self.lines:
                f.write(f"{t:.3f} {line}\n")
        return path


def frames(events: list[dict[str, Any]], direction: str) -> Iterator[tuple[dict[str, Any], Frame | str]]:
    """The frames of the sniffer log in one direction ("rx": to the MCU, "tx": from it), decoded."""
    for e in events:
        if e.get("ev") != direction:
            continue
        if "bad" in e:
            yield e, str(e["bad"])
            continue
        payload = bytes.fromhex(e["p"])
        t = int(e["type"])
        if t not in MESSAGES or len(payload) != MESSAGES[t][1].size:
            yield e, "type" if t not in MESSAGES else "length"
            continue
        name, layout, names = MESSAGES[t]
        yield e, Frame(name, int(e["seq"]), dict(zip(names, layout.unpack(payload), strict=True)))


def run_script(b: Build, workdir: Path, script: Script, profile: str, seed: int = 1, duration_s: float = 0,
               extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Run the board on a script to its end (as fast as the emulator goes) and return the event log."""
    path = script.write(workdir / "input.script")
    args = [*extra]
    if duration_s:
        args += ["--duration-s", str(duration_s)]
    board = Board(b, workdir, profile=profile, seed=seed, pty=False, script=path, eeprom=False, extra=args)
    board.start()
    rc = board.wait(timeout_s=600)
    board.stop()
    if rc != 0:
        raise RuntimeError(f"sorter-board exited with {rc}: {board.command()}")
    return board.events()


def probe_identity(b: Build, workdir: Path, seed: int = 1) -> tuple[int, int]:
    """(boot_id, epoch) of the board's first boot with this seed and an erased EEPROM.

    A script run is deterministic (same firmware, seed and EEPROM give the same boot), so a short run that asks
    for STATUS tells the epoch the commands of the real run must carry.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    s = Script()
    s.send(10_000, "STATUS_REQUEST")
    events = run_script(b, workdir, s, profile="0", seed=seed, duration_s=0.02)
    for _e, f in frames(events, "tx"):
        if isinstance(f, Frame) and f.name == "STATUS":
            return f["boot_id"], f["epoch"]
    raise RuntimeError("the board did not answer STATUS_REQUEST")


# ---------------------------------------------------------------------------- a live host on the pseudo-terminal


class Peer:
    """The host side of the serial link to a board running in real time on its pseudo-terminal (pyserial, as the
    sorter opens a USB serial adapter). Frames from the board are collected by a reader thread; a heartbeat thread
    feeds the watchdog while ``heartbeats`` is set."""

    def __init__(self, path: Path, baudrate: int = 1_000_000) -> None:
        import queue
        import threading

        import serial

        self.port = serial.Serial(str(path), baudrate=baudrate, timeout=0.05)
        self.frames: queue.Queue[Frame | str] = queue.Queue()
        self.heartbeats = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._seq = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._beater = threading.Thread(target=self._beat, daemon=True)
        self._reader.start()
        self._beater.start()

    def _read(self) -> None:
        reader = FrameReader()
        while not self._stop.is_set():
            try:
                data = self.port.read(max(1, self.port.in_waiting))  # returns as soon as a byte is there
            except Exception:  # the port closed under us: stop
                return
            for f in reader.feed(data):
                self.frames.put(f)

    def _beat(self) -> None:
        k = 0
        while not self._stop.wait(0.02):
            if self.heartbeats.is_set():
                self.send("HEARTBEAT", counter=k)
                k += 1

    def write(self, data: bytes) -> None:
        with self._lock:
            self.port.write(data)

    def send(self, name: str, **fields: int) -> int:
        with self._lock:
            seq = self._seq
            self._seq = (self._seq + 1) % 0xFFFF
            self.port.write(encode(name, seq, **fields))
        return seq

    def expect(self, name: str, timeout_s: float = 2.0, **match: int) -> Frame:
        """The next frame of this type whose fields match (others are skipped)."""
        import queue

        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name} {match} from the board within {timeout_s} s")
            try:
                f = self.frames.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(f, Frame) and f.name == name and all(f.fields.get(k) == v for k, v in match.items()):
                return f

    def answer(self, seq: int, timeout_s: float = 2.0) -> Frame:
        """The ACK or NAK of the frame ``seq``."""
        import queue

        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no answer to frame {seq} within {timeout_s} s")
            try:
                f = self.frames.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(f, Frame) and f.name in ("ACK", "NAK") and f["acked_seq"] == seq:
                return f

    def status(self) -> Frame:
        self.send("STATUS_REQUEST")
        return self.expect("STATUS")

    def count(self) -> int:
        """The encoder count now (a PING)."""
        t = time.monotonic_ns()
        self.send("PING", host_time_ns=t)
        return self.expect("PONG", host_time_ns=t)["encoder_count"]

    def drain(self) -> list[Frame | str]:
        out = []
        while not self.frames.empty():
            out.append(self.frames.get_nowait())
        return out

    def close(self) -> None:
        self._stop.set()
        self._beater.join(timeout=1)
        self.port.close()
        self._reader.join(timeout=1)

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
