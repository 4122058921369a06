"""The controller's end of the serial line, as an emulator drives it.

``ControllerPort`` is what ``ValveControllerEmulator`` needs from a port: wait
for the host's bytes, write answers without ever blocking for long, close.
Two ports provide it:

- ``SerialUrlPort``: a pyserial port opened from a device path or URL (one end
  of a socat pseudo-terminal pair, a real adapter); a write that the port does
  not take within ``write_timeout`` raises, and the emulator reopens the port.
- ``PtyMasterPort``: a pseudo-terminal that the controller's side owns itself
  (``os.openpty()``): the emulator reads and writes the master, the host opens
  ``host_path`` (``/dev/pts/N``) exactly as it opens a real serial port. No
  relay process stands between the two ends, as no user process stands between
  a host and a USB-serial adapter. Writes never block: what the master does not
  take waits in a bounded backlog, sent when the master is writable; what does
  not fit in the backlog is dropped whole (a full UART ring buffer), and both
  are counted.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from dataclasses import dataclass
from typing import Protocol

import serial


@dataclass
class PortCounters:
    """What the controller's port could not send at once.

    Attributes:
        write_stalls: times a write left bytes behind (the host had not drained what came before).
        write_timeouts: writes refused for the whole write timeout (the port was then reopened).
        tx_dropped_bytes: bytes dropped because the backlog was full (whole writes, never part of a frame).
        tx_backlog_max_bytes: the largest backlog seen.
    """

    write_stalls: int = 0
    write_timeouts: int = 0
    tx_dropped_bytes: int = 0
    tx_backlog_max_bytes: int = 0


class PortGoneError(OSError):
    """The other end hung up (a read returned end of file): the port must be closed."""


class ControllerPort(Protocol):
    """The controller's end of the line."""

    name: str
    counters: PortCounters

    def receive(self, timeout_s: float) -> bytes:
        """Wait up to ``timeout_s`` for bytes from the host (sending pending bytes meanwhile); b"" when none came.

        Raises:
            OSError: the port is gone (``PortGoneError`` when the other end hung up).
            serial.SerialException: the port is gone.
        """
        ...

    def write(self, data: bytes) -> None:
        """Send ``data``; returns at once or within a bounded time, never blocks forever.

        Raises:
            OSError: the port is gone.
            serial.SerialException: the port is gone or refused the bytes for its whole write timeout.
        """
        ...

    def close(self) -> None:
        """Release the port (idempotent)."""
        ...


class SerialUrlPort:
    """A pyserial port (device path or URL) as the controller's end.

    Args:
        url: device path or pyserial URL.
        baudrate: line rate (ignored by pseudo-terminals).
        write_timeout_s: longest wait for the port to take one write.
        counters: where write timeouts are counted (shared over reopenings).
    """

    def __init__(self, url: str, baudrate: int, write_timeout_s: float = 0.5, counters: PortCounters | None = None) -> None:
        self.name = url
        self.counters = counters if counters is not None else PortCounters()
        self._port: serial.SerialBase = serial.serial_for_url(
            url, baudrate=baudrate, timeout=0, write_timeout=write_timeout_s
        )

    def receive(self, timeout_s: float) -> bytes:
        port = self._port
        fd = port.fileno() if hasattr(port, "fileno") else None
        if fd is None:  # URL handlers without a file descriptor (loop://): poll
            time.sleep(timeout_s)
            return bytes(port.read(port.in_waiting or 0))
        ready, _, _ = select.select([fd], [], [], timeout_s)
        if not ready:
            return b""
        data = os.read(fd, 4096)
        if not data:
            raise PortGoneError("port closed by the other end")
        return data

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except serial.SerialTimeoutException:
            self.counters.write_timeouts += 1
            raise

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()


class PtyMasterPort:
    """A pseudo-terminal owned by the controller's side; the host opens ``host_path``.

    The slave end is held open here too (the controller's UART is always there): without it,
    reading the master fails with ``EIO`` whenever the host has the port closed. It is opened
    with pyserial, so the terminal has exactly the raw settings a serial port gets, from the
    start (no echo, no line editing, no CR/LF translation) and again when the host opens it.
    Closing the master hangs the line up: the host reads end of file and the path disappears,
    as a pulled USB-serial adapter's does.

    Args:
        baudrate: the line rate the terminal is set to (a pseudo-terminal ignores it).
        tx_limit_bytes: largest backlog of bytes the master has not taken yet; writes beyond it are dropped.
    """

    def __init__(self, baudrate: int = 921600, tx_limit_bytes: int = 65536) -> None:
        if tx_limit_bytes <= 0:
            raise ValueError(f"PtyMasterPort: tx_limit_bytes={tx_limit_bytes!r} must be > 0 (bytes; default 65536)")
        master, slave = os.openpty()
        self.host_path = os.ttyname(slave)
        self.name = f"pty master of {self.host_path}"
        try:
            self._slave = serial.Serial(self.host_path, baudrate=baudrate, timeout=0)
        finally:
            os.close(slave)  # pyserial holds its own descriptor of the slave
        os.set_blocking(master, False)
        self._master = master
        self._tx = bytearray()
        self.tx_limit_bytes = tx_limit_bytes
        self.counters = PortCounters()

    def fileno(self) -> int:
        """The master's file descriptor (-1 once closed)."""
        return self._master

    @property
    def tx_pending_bytes(self) -> int:
        """Bytes written and not yet taken by the master."""
        return len(self._tx)

    def receive(self, timeout_s: float) -> bytes:
        fd = self._fd()
        ready, writable, _ = select.select([fd], [fd] if self._tx else [], [], timeout_s)
        if writable:
            self._flush()
        if not ready:
            return b""
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return b""
        if not data:
            raise PortGoneError(f"{self.name} closed")
        return data

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._tx:  # keep the order: behind what is already waiting
            self._queue(data)
            self._flush()
            return
        try:
            n = os.write(self._fd(), data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            self.counters.write_stalls += 1
            self._queue(data[n:])

    def close(self) -> None:
        """Close the master (the host sees the line hang up) and the held slave."""
        fd, self._master = self._master, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(serial.SerialException, OSError):
            self._slave.close()
        self._tx.clear()

    def __enter__(self) -> PtyMasterPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fd(self) -> int:
        if self._master < 0:
            raise PortGoneError(f"{self.name} is closed")
        return self._master

    def _queue(self, data: bytes) -> None:
        if len(self._tx) + len(data) > self.tx_limit_bytes:
            self.counters.tx_dropped_bytes += len(data)
            return
        self._tx += data
        self.counters.tx_backlog_max_bytes = max(self.counters.tx_backlog_max_bytes, len(self._tx))

    def _flush(self) -> None:
        try:
            n = os.write(self._fd(), self._tx)
        except BlockingIOError:
            return
        del self._tx[:n]
