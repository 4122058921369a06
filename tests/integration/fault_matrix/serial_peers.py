"""The two controllers the serial fault rows run against: the Python valve-controller emulator and the reference
firmware on its emulated board (``firmware/``, simavr), each as its own process at the far end of a real
pseudo-terminal, each restartable, with its encoder re-zeroable.

Both sit behind one small interface (:class:`Peer`) so that a row is written once and parametrized over
``PEERS``. The firmware board runs at a quarter of real time (as in ``tests/integration/firmware``): a busy
machine then cannot starve its 100 ms watchdog by accident; its encoder rate in counts per second of *wall* time
is therefore a quarter of its emulated rate, and the rows take their leads from ``speed_cps``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Protocol

import pytest

from firmware_bridge.pty_pair import PtyPair

SPEED = 25_000.0  # counts per second: 2.5 m/s at 10 counts/mm
BOARD_TIME_SCALE = 0.25
PEERS = ("python", "firmware")

_FIRMWARE_TESTS = Path(__file__).resolve().parents[1] / "firmware"


def _fwboard():  # type: ignore[no-untyped-def]
    """The firmware tests' board driver (tests/integration/firmware/fwboard.py), imported by path."""
    if str(_FIRMWARE_TESTS) not in sys.path:
        sys.path.insert(0, str(_FIRMWARE_TESTS))
    import fwboard

    return fwboard


class Peer(Protocol):
    """A controller process on a pseudo-terminal."""

    name: str
    url: str  # the host's end
    speed_cps: float  # encoder counts per second of wall time
    valves: int

    def start(self) -> None: ...

    def power_cut(self) -> None:
        """Kill the process (its queue, id history and count are gone) and start a fresh one."""
        ...

    def zero_encoder(self) -> None:
        """Re-zero the encoder as an operator or an index pulse does: a new epoch, the controller stays up."""
        ...

    def stop(self) -> None: ...


class PythonPeer:
    """``python -m firmware_bridge.emulators.valve_controller`` on the device end of a socat pair."""

    name = "python"
    speed_cps = SPEED
    valves = 64

    def __init__(self, watchdog_ms: float = 100.0) -> None:
        self.pty = PtyPair().start()
        self.url = self.pty.host_path
        self.watchdog_ms = watchdog_ms
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "firmware_bridge.emulators.valve_controller", "--port", self.pty.device_path]
        cmd += ["--speed-counts-per-s", str(SPEED), "--watchdog-ms", str(self.watchdog_ms)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5.0)
        self.proc = None

    def power_cut(self) -> None:
        self._kill()
        self.start()

    def zero_encoder(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        self._kill()
        self.pty.close()


class FirmwarePeer:
    """``sorter-board`` running the firmware ELF on its own pseudo-terminal (the link opens its symlink)."""

    name = "firmware"
    speed_cps = SPEED * BOARD_TIME_SCALE
    valves = 32

    def __init__(self, workdir: Path) -> None:
        fwboard = _fwboard()
        missing = fwboard.tools_missing()
        if missing:
            pytest.skip(f"cannot build the firmware: {missing}")
        self._fwboard = fwboard
        self.build = fwboard.build()
        self.workdir = workdir
        self.seed = 7
        self.board = self._new_board()
        self.url = str(self.board.pty_path)

    def _new_board(self):  # type: ignore[no-untyped-def]
        return self._fwboard.Board(
            self.build, self.workdir, profile=str(round(SPEED)), seed=self.seed,
            extra=("--time-scale", str(BOARD_TIME_SCALE)),
        )

    def start(self) -> None:
        self.board.start()

    def power_cut(self) -> None:
        proc = self.board.proc
        assert proc is not None
        proc.kill()  # SIGKILL: no goodbye on the wire, the EEPROM's boot counter is the one of the last clean stop
        proc.wait(5.0)
        self.board.stop()  # closes its pipes
        self.seed += 1  # the SRAM powers up with other noise: another boot id, another random first epoch
        self.board = self._new_board()
        self.board.start()

    def zero_encoder(self) -> None:
        self.board.control("zero")  # a falling edge on the encoder-reset input (INT4)

    def stop(self) -> None:
        self.board.stop()


def make_peer(name: str, workdir: Path, watchdog_ms: float = 100.0) -> PythonPeer | FirmwarePeer:
    """A started peer of kind ``name`` (one of ``PEERS``); ``watchdog_ms`` sets the Python emulator's watchdog
    (the firmware's is its own 100 ms)."""
    peer: PythonPeer | FirmwarePeer = PythonPeer(watchdog_ms) if name == "python" else FirmwarePeer(workdir)
    peer.start()
    return peer
