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
_TYPE_FIRE = 0x10
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
    on_cycle: int
    command_id: int


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
        self._fires: dict[tuple[int, int], int] = {}  # (valve, open count) -> command id, from the FIREs on the wire
        self.pulses = 0
        self.edges = 0
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
        done: dict[tuple[int, int, int], list[int]] = {}  # (command id, on cycle, off cycle) -> valves
        times: dict[tuple[int, int, int], tuple[int, int]] = {}
        for e in events:
            ev = e.get("ev")
            if ev == "rx" and e.get("type") == _TYPE_FIRE and "p" in e:
                payload = bytes.fromhex(str(e["p"]))
                if len(payload) == _FIRE.size:
                    cid, first, last, open_count, _close, _epoch = _FIRE.unpack(payload)
                    for v in range(first, min(last, FIRMWARE_VALVES - 1) + 1):
                        self._fires[(v, open_count)] = cid
            elif ev == "mark":
                if int(e["count"]) <= 0:  # read before the firmware started its counter: ask again
                    time.sleep(0.01)
                    self.control("mark boot")
                else:
                    self._offset_counts = int(e["belt"]) - int(e["count"])
                    self._offset_seen.set()
            elif ev == "valve":
                self.edges += 1
                v, t_ns = int(e["valve"]), self.device.t0_ns + round(float(e["t_us"]) * 1000.0)
                if e["on"]:
                    cid = self._fires.pop((v, int(e["count"])), 0)
                    self._open[v] = _Open(t_ns, int(e["cycle"]), cid)
                elif v in self._open:
                    o = self._open.pop(v)
                    key = (o.command_id, o.on_cycle, int(e["cycle"]))
                    done.setdefault(key, []).append(v)
                    times[key] = (o.t_on_ns, t_ns)
            elif ev in ("reset", "zero"):
                self._fires.clear()
        for key, valves in done.items():
            valves.sort()
            first = prev = valves[0]
            for v in [*valves[1:], -2]:  # contiguous runs of valves switched together: one pulse each
                if v != prev + 1:
                    self.device.valve_pulse(key[0], first, prev, *times[key])
                    self.pulses += 1
                    first = v
                prev = v
        if len(self._fires) > 4096:  # FIREs that never opened (refused, cancelled, lost)
            for k in list(self._fires)[:2048]:
                del self._fires[k]
