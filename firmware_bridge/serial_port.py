"""The serial port under ``SerialLink``: opened non-blocking, written without blocking, and when a stall means it is gone.

A port that does not take bytes at once is stalled, not lost (PROTOCOL.md section 5,
"Write stall"): what it did not take waits in a :class:`~firmware_bridge.tx_backlog.TxBacklog`.
Only a stall that has lasted ``stall_timeout_s`` with nothing heard from the controller
meanwhile (a wedged adapter) is a lost port, raised as :class:`PortLostError`.
"""

from __future__ import annotations

import os
import time

import serial

from firmware_bridge.tx_backlog import TxBacklog


class PortLostError(Exception):
    """The port must be closed and reopened; ``reason`` is the key counted in ``stats()`` (``reconnects_<reason>``)."""

    def __init__(self, why: str, reason: str) -> None:
        super().__init__(why)
        self.reason = reason


def open_port(url: str, baudrate: int) -> serial.SerialBase:
    """Open a device path or pyserial URL with a non-blocking file descriptor (writes go through the backlog).

    Raises:
        serial.SerialException, OSError, ValueError: the port cannot be opened.
    """
    port = serial.serial_for_url(url, baudrate=baudrate, timeout=0, write_timeout=0)
    os.set_blocking(port.fileno(), False)
    return port


def write_backlog(tx: TxBacklog, fd: int) -> float:
    """Write what the port takes now; the rest waits in ``tx``, in order (a stall, never an error).

    Returns:
        how long the ``os.write`` call took, in seconds (non-blocking: it should stay far under 1 ms).

    Raises:
        OSError: the port is gone (``EIO``, ``ENODEV``: a pulled adapter): the caller reconnects.
    """
    t0 = time.monotonic()
    try:
        n = os.write(fd, tx.pending())
    except (BlockingIOError, InterruptedError):
        n = 0
    t1 = time.monotonic()
    tx.written(n, t1)
    return t1 - t0


def stall_left_s(tx: TxBacklog, last_rx_s: float, stall_timeout_s: float, now_s: float) -> float:
    """Seconds until the current stall of ``tx``, with the controller silent since ``last_rx_s``, is a lost port."""
    assert tx.stall_since_s is not None
    return max(tx.stall_since_s, last_rx_s) + stall_timeout_s - now_s


def check_stall(tx: TxBacklog, last_rx_s: float, stall_timeout_s: float, now_s: float) -> None:
    """Raise :class:`PortLostError` when the current stall has outlasted ``stall_timeout_s`` with the controller silent."""
    if tx.stall_since_s is not None and stall_left_s(tx, last_rx_s, stall_timeout_s, now_s) <= 0:
        raise PortLostError(
            f"writes stalled for {now_s - tx.stall_since_s:.1f} s with nothing heard from the controller "
            f"(stall_timeout_s {stall_timeout_s:g})",
            "stalled_silent",
        )
