"""The reference firmware on its emulated board as the serial controller of a simulated line.

``actuator.emulator: firmware`` builds ``firmware/`` (``make avr board``, cached by make) and starts
``sorter-board``: the ATmega2560 firmware in simavr, its UART on a pseudo-terminal that the line's serial link
opens like a USB adapter. The simulated belt and the emulated encoder agree on the belt's motion because they are
the same function of time: the board's emulated time 0 is the simulated world's start (``--start-ns``, on the
same monotonic clock) and its encoder runs at the world's belt speed times the link's counts per mm, so the count
the firmware compares against is the world's odometer in counts.

What executes is the firmware's pin edges: the board logs every valve pin edge with its emulated time, and a
thread here turns each opening and closing into an air pulse of the simulator's valve bank at that time
(:meth:`PinDevice.valve_pulse`), which ejects whatever the air hits. Commands are never scheduled in the
simulator: a FIRE the firmware refused, dropped or cut short blows exactly as the pins did.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sorter.errors import ConfigError, DeviceNotConnectedError

log = logging.getLogger(__name__)

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
FIRMWARE_VALVES = 32
DEBIAN_PACKAGES = "gcc-avr avr-libc simavr libsimavr-dev libelf-dev pkg-config"
_FIRE = struct.Struct("<IHHqqH")  # PROTOCOL.md section 3: command_id, valve_first, valve_last, open, close, epoch
_ANSWER = struct.Struct("<HIB")  # ACK and NAK: acked sequence number, command id, code
_TYPE_FIRE = 0x10
_TYPE_ACK = 0x80
_TYPE_NAK = 0x82
_TYPE_FIRED = 0x83
_FIRED = struct.Struct("<Iqq")  # command_id, the counts its outputs switched on and off at
_ACK_CANCELLED = 2
#: the compare interrupt writes the four valve ports one after another: edges of one switching lie this close
_SWITCH_SPREAD_NS = 2_000
_END_NS = 2**62
#: objects stay on the simulated belt this far past the jet line, so that air the pins blew is evaluated against
#: them although the pin log is read later: the board flushes it every 20 ms, and on a busy machine the emulated
#: MCU falls behind real time (2 s at 2.5 m/s)
PIN_LAG_MM = 5000.0


class PinDevice(Protocol):
    """The simulated valve bank as the firmware's pins drive it."""

    @property
    def t0_ns(self) -> int:
        """Monotonic time of the simulated world's start (its odometer 0)."""
        ...

    def speed_counts_per_s(self) -> float:
        """The belt's speed in link counts per second."""
        ...

    def valve_pulse(self, command_id: int, valve_first: int, valve_last: int, t_open_ns: int, t_close_ns: int) -> None:
        """Air on valves ``valve_first..valve_last`` from ``t_open_ns`` to ``t_close_ns`` (already switched)."""
        ...

    def follow_pins(self, lag_mm: float) -> None:
        """Keep objects on the belt ``lag_mm`` past the jet line: pin edges are read after they happen."""
        ...


def firmware_missing() -> str:
    """Why the firmware cannot be built and emulated here ("" when it can)."""
    for tool in ("make", "cc", "avr-gcc", "avr-objcopy", "avr-size"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed"
    if not Path("/usr/include/simavr/sim_avr.h").exists():
        return "the simavr headers are not installed"
    return ""


def build_firmware(firmware_dir: Path = FIRMWARE_DIR) -> tuple[Path, Path]:
    """``make -C firmware avr board`` (make rebuilds only what changed); returns (ELF, board executable).

    Raises:
        ConfigError: the toolchain is missing or the build failed.
    """
    why = firmware_missing()
    if why:
        raise ConfigError(
            f"actuator.emulator = 'firmware' needs the AVR toolchain and simavr: {why}; "
            f"install them (apt-get install {DEBIAN_PACKAGES}) or use actuator.emulator: true (the Python emulator)"
        )
    done = subprocess.run(
        ["make", "-s", "-C", str(firmware_dir), "avr", "board"], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise ConfigError(f"building the firmware in {firmware_dir} failed (make avr board): {done.stderr.strip()[-800:]}")
    build = firmware_dir / "build"
    return build / "valve-controller.elf", build / "sorter-board"


@dataclass
class _Open:
    t_on_ns: int
    count: int


@dataclass
class _Fire:
    command_id: int
    open_count: int
    close_count: int


class FirmwareBoard:
    """``sorter-board`` running the firmware, its valve pins feeding ``device``.

    Args:
        device: the simulated valve bank (its start time and belt speed drive the board's encoder).
        workdir: where the pseudo-terminal link, the event log and the EEPROM live (default: a new temp folder).
        seed: the board's power-up SRAM noise (its boot id and first epoch).
    """

    def __init__(self, device: PinDevice, workdir: Path | None = None, seed: int = 1) -> None:
        self.device = device
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="sorter-board-")
        self.workdir = workdir if workdir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.seed = seed
        self.pty_path = self.workdir / "ttyBOARD"
        self.log_path = self.workdir / "board.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open: dict[int, _Open] = {}
        self._done: dict[tuple[int, int, int], list[int]] = {}  # (command id, open, close count) -> valves, not blown
        self._times: dict[tuple[int, int, int], tuple[int, int]] = {}  # ... -> (open ns, close ns)
        self._log_ns = 0  # time of the latest entry read from the log
        self._fires: dict[int, list[_Fire]] = {}  # valve -> FIREs on the wire not yet opened there
        self._fire_seq: dict[int, int] = {}  # frame sequence number -> command id of a FIRE not answered yet
        self._ranges: dict[int, tuple[int, int]] = {}  # command id -> its FIRE's valves (first, last)
        self._closed: dict[int, int] = {}  # command id -> the count its FIRED says it closed at
        self.pulses = 0
        self.edges = 0
        #: times the emulated MCU fell more than 20 ms behind the wall clock (a busy machine starved the emulator),
        #: and the most it fell behind: the host hears nothing meanwhile, which a real controller never does
        self.stalls = 0
        self.behind_worst_ms = 0.0
        self._offset_counts: int | None = None
        self._offset_seen = threading.Event()

    def start(self, timeout_s: float = 10.0) -> FirmwareBoard:
        """Build (cached), start the board and wait for its pseudo-terminal.

        Raises:
            ConfigError: no toolchain, or the build failed.
            DeviceNotConnectedError: the board did not start.
        """
        elf, board = build_firmware()
        self.device.follow_pins(PIN_LAG_MM)
        cps = self.device.speed_counts_per_s()
        cmd = [
            str(board), str(elf), "--pty", str(self.pty_path), "--profile", f"{cps:.6f}", "--log", str(self.log_path),
            "--seed", str(self.seed), "--eeprom", str(self.workdir / "eeprom.bin"), "--start-ns", str(self.device.t0_ns),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        while line and not line.startswith("ready"):  # simavr prints what it loaded first
            line = self.proc.stdout.readline().decode()
        deadline = time.monotonic() + timeout_s
        while line.startswith("ready") and not self.pty_path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not line.startswith("ready") or not self.pty_path.exists():
            err = self.proc.stderr.read().decode() if self.proc.stderr and self.proc.poll() is not None else ""
            self.stop()
            raise DeviceNotConnectedError(f"the emulated firmware board did not start ({' '.join(cmd)}): {err.strip()}")
        self._thread = threading.Thread(target=self._follow, name="firmware-board-pins", daemon=True)
        self._thread.start()
        self.control("mark boot")  # logs the MCU's count beside the belt's: the counts it missed while booting
        log.info("firmware board: %s on %s, encoder %.0f counts/s", elf.name, self.pty_path, cps)
        return self

    def boot_offset_counts(self, timeout_s: float = 5.0) -> int:
        """Belt counts the MCU did not count (those before its timer was set up at boot): the firmware's count is
        the belt's minus this. Waits for the board's first report.

        Raises:
            DeviceNotConnectedError: the board did not report within ``timeout_s``.
        """
        if not self._offset_seen.wait(timeout_s) or self._offset_counts is None:
            raise DeviceNotConnectedError(f"the emulated firmware board did not report its count within {timeout_s:g} s")
        return self._offset_counts

    @property
    def url(self) -> str:
        """The host's end of the serial link."""
        return str(self.pty_path)

    def control(self, line: str) -> None:
        """A board command: ``reset``, ``power``, ``zero`` (encoder reset), ``speed CPS``, ``glitch N``."""
        if self.proc is not None and self.proc.stdin is not None and self.proc.poll() is None:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()

    def stop(self) -> None:
        """Quit the board (kill it if it does not), then read the last pin edges."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    assert proc.stdin is not None
                    proc.stdin.write(b"quit\n")
                    proc.stdin.flush()
                    proc.wait(timeout=10)
                except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._blow(_END_NS, final=True)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ------------------------------------------------------------------ the pins

    def _follow(self) -> None:
        """Tail the board's event log: FIREs on the wire name the pulses, valve edges make them."""
        while not self.log_path.exists() and not self._stop.wait(0.005):
            pass
        try:
            with open(self.log_path, encoding="utf-8") as f:
                pending = ""
                while True:
                    chunk = f.read()
                    if chunk:
                        pending += chunk
                        *lines, pending = pending.split("\n")
                        self._take([json.loads(x) for x in lines if x])
                    elif self._stop.is_set():
                        return
                    else:
                        time.sleep(0.005)
        except Exception:
            log.exception("firmware board: reading its pin log failed; the simulated valves no longer follow the pins")

    def _take(self, events: list[dict[str, Any]]) -> None:
        done, times = self._done, self._times
        for e in events:
            ev = e.get("ev")
            if "t_us" in e:
                self._log_ns = self.device.t0_ns + round(float(e["t_us"]) * 1000.0)
            if ev == "rx" and e.get("type") == _TYPE_FIRE and "p" in e:
                self._take_fire(bytes.fromhex(str(e["p"])), int(e.get("seq", -1)))
            elif ev == "tx" and e.get("type") in (_TYPE_ACK, _TYPE_NAK) and "p" in e:
                self._take_answer(int(e["type"]), bytes.fromhex(str(e["p"])))
            elif ev == "tx" and e.get("type") == _TYPE_FIRED and "p" in e:
                payload = bytes.fromhex(str(e["p"]))
                if len(payload) == _FIRED.size:
                    cid, _opened, closed = _FIRED.unpack(payload)
                    self._closed[cid] = closed
            elif ev == "mark":
                if int(e["count"]) <= 0:  # read before the firmware started its counter: ask again
                    time.sleep(0.01)
                    self.control("mark boot")
                else:
                    self._offset_counts = int(e["belt"]) - int(e["count"])
                    self._offset_seen.set()
            elif ev == "valve":
                self.edges += 1
                v, t_ns, count = int(e["valve"]), self.device.t0_ns + round(float(e["t_us"]) * 1000.0), int(e["count"])
                if e["on"]:
                    self._open[v] = _Open(t_ns, count)
                elif v in self._open:
                    o = self._open.pop(v)
                    for cid, c_open, c_close, t_open, t_close in self._split(v, o, count, t_ns):
                        key = (cid, c_open, c_close)
                        done.setdefault(key, []).append(v)
                        times.setdefault(key, (t_open, t_close))
            elif ev == "stall":
                self.stalls += 1
                self.behind_worst_ms = max(self.behind_worst_ms, float(e["behind_ms"]))
            elif ev in ("reset", "zero"):
                self._fires.clear()
                self._fire_seq.clear()
        self._blow(self._log_ns - _SWITCH_SPREAD_NS)
        if sum(len(x) for x in self._fires.values()) > 4096:  # FIREs that never opened (cancelled, lost)
            for v in self._fires:
                self._fires[v] = self._fires[v][-64:]
            self._fire_seq.clear()
        for known in (self._ranges, self._closed):
            if len(known) > 4096:
                for cid in list(known)[:2048]:
                    del known[cid]

    def _blow(self, before_ns: int, final: bool = False) -> None:
        """Blow the pulses that closed before ``before_ns``: the log has moved past every edge of their switching (the
        ports switch one after another, and a log flush may fall between them), and no valve of their FIRE is still
        on in a pin pulse that began before they closed (where another FIRE overlaps, their part there is known
        only when that valve switches off). ``final``: blow everything."""

        def covered(key: tuple[int, int, int]) -> bool:
            first, last = self._ranges.get(key[0], (0, -1))
            return any(o.count < key[2] for v, o in self._open.items() if first <= v <= last)

        for key in [k for k, t in self._times.items() if final or (t[1] < before_ns and not covered(k))]:
            valves = sorted(self._done.pop(key))
            t_open_ns, t_close_ns = self._times.pop(key)
            first = prev = valves[0]
            for v in [*valves[1:], -2]:  # contiguous runs of valves switched together: one pulse each
                if v != prev + 1:
                    self.device.valve_pulse(key[0], first, prev, t_open_ns, t_close_ns)
                    self.pulses += 1
                    first = v
                prev = v

    def _take_fire(self, payload: bytes, seq: int) -> None:
        """A FIRE on the wire: remembered on each of its valves until a pin pulse there covers its opening."""
        if len(payload) != _FIRE.size:
            return
        cid, first, last, open_count, close_count, _epoch = _FIRE.unpack(payload)
        valves = range(first, min(last, FIRMWARE_VALVES - 1) + 1)
        if any(f.command_id == cid for v in valves for f in self._fires.get(v, [])):
            return  # a retransmission, or a conflicting reuse of the id (refused: the first one stands)
        for v in valves:
            self._fires.setdefault(v, []).append(_Fire(cid, open_count, close_count))
        self._fire_seq[seq] = cid
        self._ranges[cid] = (first, valves[-1] if valves else first)

    def _take_answer(self, msg_type: int, payload: bytes) -> None:
        """An ACK or NAK: a refused FIRE (NAK) or a cancelled one (ACK ``CANCELLED``) never opens."""
        if len(payload) != _ANSWER.size:
            return
        seq, cid, code = _ANSWER.unpack(payload)
        named = self._fire_seq.pop(seq, None)  # the FIRE this answers, if it was a new one
        if msg_type == _TYPE_NAK:
            if named != cid:
                return
        elif code != _ACK_CANCELLED:
            return
        for v, fires in self._fires.items():
            self._fires[v] = [f for f in fires if f.command_id != cid]

    def _split(self, valve: int, o: _Open, c_off: int, t_off_ns: int) -> list[tuple[int, int, int, int, int]]:
        """The commands one pin pulse of ``valve`` executed: (command id, open count, close count, open ns, close ns).

        Pulses overlapping on a valve are one pin pulse (the outputs OR together); each FIRE that opened during it
        gets its own air, from its own opening (the compare match at its open count; the pin edge for the first)
        to its own closing (the pin's edge for the last), as each command blows in the in-process line. The
        times of counts between the pin's two edges follow from them (the belt runs at one speed).
        """
        fires = self._fires.get(valve, [])
        mine = sorted((f for f in fires if f.open_count < c_off), key=lambda f: f.open_count)
        self._fires[valve] = [f for f in fires if f.open_count >= c_off]
        mine = [f for f in mine if f.close_count > o.count] or [_Fire(0, o.count, c_off)]
        span = max(c_off - o.count, 1)

        def t_at(count: int) -> int:
            return o.t_on_ns + (t_off_ns - o.t_on_ns) * (count - o.count) // span

        last = max(range(len(mine)), key=lambda i: mine[i].close_count)
        out = []
        for i, f in enumerate(mine):
            c_open = o.count if i == 0 else max(f.open_count, o.count)
            # the last to close ends at the pin's edge (its width may have been clamped); the others where their
            # FIRED says they closed, else where they asked
            c_close = c_off if i == last else min(self._closed.get(f.command_id, f.close_count), c_off)
            if c_close > c_open:
                out.append((f.command_id, c_open, c_close, t_at(c_open), t_at(c_close)))
        return out
