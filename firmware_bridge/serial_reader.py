"""The receive side of the serial link: the one thread that polls and reads the port.

On Linux a ``poll``/``select`` or ``read`` of a terminal first waits for the
terminal's pending flip-buffer work (``flush_to_ldisc``: the kernel hands
received bytes to the line discipline), and that work runs in a shared kernel
worker at normal priority. On a loaded machine the wait lasts hundreds of
milliseconds, whatever the priority of the waiting thread; a USB-serial adapter
has the same wait on the host's receive side. Writing does not wait for that
work. So ``SerialLink`` writes from its own thread (heartbeats on their own
schedule) and only this thread ever polls or reads the port: its waits delay
what the host hears, never what it says.

The thread reads its own duplicate of the port's file descriptor (handed over
with :meth:`PortReader.attach`; the link keeps and closes its own), so closing
one side never leaves the other with a descriptor number that a new file may
reuse. What it reads is stamped on arrival and queued in ``received`` with the
port's generation: the link feeds it to its session from its own thread and
drops what belongs to a port it has closed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge.serial_port import PortLostError

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.5  # longest wait before the thread looks again for a new port or a stop (it is woken for both)


@dataclass(frozen=True, slots=True)
class Received:
    """Bytes read from the port (``lost`` None), or why the port is gone (``data`` empty).

    Attributes:
        generation: which opening of the port they came from (the link drops those of a closed one).
        data: the bytes, as read.
        t_ns: the link's clock when the read returned (the arrival time the session uses).
        t_s: ``time.monotonic()`` then (what the write-stall rule compares with).
        lost: set when the read failed or the other end closed the port.
    """

    generation: int
    data: bytes
    t_ns: int
    t_s: float
    lost: PortLostError | None = None


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` in the kernel (``/proc/PID/task/TID/comm``, ``top -H``); best effort, Linux only."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME: at most 15 bytes


class WakePipe:
    """Ends a thread's wait early: ``wake()`` from any thread, ``wait(s)`` in the one that sleeps (a pipe, never a tty)."""

    def __init__(self) -> None:
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._w, False)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._w, b"\x01")

    def wait(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s``, less when woken (a wake-up since the last wait ends it at once)."""
        try:
            select.select([self.fd], [], [], timeout_s)
        except (OSError, ValueError):  # closed meanwhile
            time.sleep(timeout_s)
        self.drain()

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self.fd, 4096)

    def close(self) -> None:
        for fd in (self.fd, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fd = self._w = -1


class PortReader:
    """The thread that alone waits on and reads the serial port.

    Args:
        name: the thread's name (also given to the kernel, cut to 15 bytes).
        on_received: called (from this thread) after each item queued in ``received``: wakes the link.
        time_ns: the link's clock, to stamp arrivals.
    """

    def __init__(self, name: str, on_received: Callable[[], None], time_ns: Callable[[], int]) -> None:
        self.name = name
        self.received: deque[Received] = deque()
        self.errors = 0  # exceptions caught in the thread's loop (it reports the port lost and goes on)
        self._on_received = on_received
        self._time_ns = time_ns
        self._lock = threading.Lock()  # guards the three hand-over fields below (pure in-memory work)
        self._offer: tuple[int, int] | None = None  # (generation, fd) handed over, not yet taken by the thread
        self._drop = False  # the thread must close the descriptor it reads
        self._holding = False  # the thread has a descriptor of a port open
        self._stop = threading.Event()
        self._wakeup = WakePipe()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def attach(self, fd: int, generation: int) -> None:
        """Read the port open on ``fd`` from now on (a duplicate: the caller keeps and closes ``fd``).

        Raises:
            OSError: the descriptor cannot be duplicated.
        """
        self._hand_over((generation, os.dup(fd)))

    def detach(self) -> None:
        """Stop reading the current port: the thread closes its descriptor as soon as it wakes."""
        self._hand_over(None)

    def holding(self) -> bool:
        """True while the thread still has a port's descriptor open (or one waits for it)."""
        with self._lock:
            return self._holding or self._offer is not None

    def stop(self, timeout_s: float) -> None:
        """Stop the thread, which closes its descriptor; close the wake-up pipe."""
        self.detach()
        self._stop.set()
        self._wakeup.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("serial port reader %s did not stop within %.1f s", self.name, timeout_s)
                return  # it still uses its descriptor and its pipe: leave them to it
            self._thread = None
        self._wakeup.close()

    # -------------------------------------------------------------- thread

    def _hand_over(self, offer: tuple[int, int] | None) -> None:
        with self._lock:
            untaken, self._offer = self._offer, offer
            self._drop = True
        if untaken is not None:  # never taken by the thread: nobody else has it
            with contextlib.suppress(OSError):
                os.close(untaken[1])
        self._wakeup.wake()

    def _post(self, item: Received) -> None:
        self.received.append(item)
        self._on_received()

    def _run(self) -> None:
        name_os_thread(self.name)
        current: tuple[int, int] | None = None  # (generation, fd) this thread reads and owns
        while not self._stop.is_set():
            try:
                current = self._take(current)
                if current is None:
                    self._wakeup.wait(IDLE_WAIT_S)
                elif not self._read(*current):
                    self._close(current)
                    current = None
            except Exception as e:  # a bug or surprise: the port counts as lost, the loop goes on
                self.errors += 1
                if self.errors <= 3 or self.errors % 100 == 0:
                    log.exception("serial port reader %s failed (%d so far); the port is reopened", self.name, self.errors)
                if current is not None:
                    self._post(self._lost_item(current[0], f"port reader failed ({type(e).__name__}: {e})", "io_error"))
                    self._close(current)
                    current = None
                self._stop.wait(0.05)
        self._close(current)
        with self._lock:
            untaken, self._offer = self._offer, None
        if untaken is not None:
            with contextlib.suppress(OSError):
                os.close(untaken[1])

    def _take(self, current: tuple[int, int] | None) -> tuple[int, int] | None:
        """Apply a hand-over: close the descriptor read so far if asked, take the offered one."""
        with self._lock:
            offer, self._offer = self._offer, None
            drop, self._drop = self._drop, False
            self._holding = self._holding or offer is not None
        if drop and current is not None:
            with contextlib.suppress(OSError):
                os.close(current[1])
            current = None
        if offer is not None:
            current = offer
        with self._lock:
            self._holding = current is not None
        return current

    def _close(self, current: tuple[int, int] | None) -> None:
        """Close the descriptor this thread reads (the port is gone, or the thread stops)."""
        if current is None:
            return
        with contextlib.suppress(OSError):
            os.close(current[1])
        with self._lock:
            self._holding = False

    def _read(self, generation: int, fd: int) -> bool:
        """Wait for bytes (or a wake-up) and queue what came; False when the port is gone."""
        ready, _, _ = select.select([fd, self._wakeup.fd], [], [], IDLE_WAIT_S)
        if self._wakeup.fd in ready:
            self._wakeup.drain()
        if fd not in ready:
            return True
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as e:  # EIO, ENODEV: a pulled adapter, a hung-up terminal
            self._post(self._lost_item(generation, str(e), "io_error"))
            return False
        if not data:
            self._post(self._lost_item(generation, "port closed by the other end", "peer_closed"))
            return False
        self._post(Received(generation, data, self._time_ns(), time.monotonic()))
        return True

    def _lost_item(self, generation: int, why: str, reason: str) -> Received:
        return Received(generation, b"", self._time_ns(), time.monotonic(), PortLostError(why, reason))
