"""What the host side of any controller link offers (serial or Modbus).

The sorter's actuator adapter talks to this protocol only, so a valve
controller on a serial port and a PLC on Modbus are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from firmware_bridge.messages import Fire, Pick, Status
from firmware_bridge.sync import SyncEstimator

EventStatus = Literal["accepted", "executed", "late", "rejected", "cancelled", "lost"]


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """Something the controller (or the link, on its behalf) said about a command.

    Attributes:
        command_id: the command.
        status: ``accepted`` (queued by the controller), ``executed`` (with the actual
            counts), ``late`` (refused: its position had passed; never executed),
            ``rejected`` (bad field, queue full for too long, no answer...),
            ``cancelled``.
        open_count: encoder count at which it executed (``executed`` only).
        close_count: encoder count at which the valves closed (``executed`` only).
        detail: reason in words.
    """

    command_id: int
    status: EventStatus
    open_count: int | None = None
    close_count: int | None = None
    detail: str = ""


class ControllerLink(Protocol):
    """Host side of a link to a controller; all methods are thread-safe and non-blocking unless named wait_*."""

    sync: SyncEstimator

    def start(self) -> None:
        """Open the port/connection and start the link thread (returns at once; connection is retried)."""
        ...

    def wait_ready(self, timeout_s: float) -> bool:
        """Block until connected and armed, or ``timeout_s`` passes."""
        ...

    def submit(self, command: Fire | Pick) -> None:
        """Queue a command for sending (position-stamped, so early is fine)."""
        ...

    def cancel(self, command_id: int) -> None:
        """Ask the controller to drop a command that has not executed."""
        ...

    def poll_events(self) -> list[LinkEvent]:
        """Return and clear the events since the last call."""
        ...

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until every submitted command has been answered (accepted, refused, failed)."""
        ...

    def fetch_reports(self) -> None:
        """The device has news: fetch it now (a PLC is polled at once; a serial controller pushes its reports)."""
        ...

    def last_status(self) -> Status | None:
        """The most recent controller status (None before the first)."""
        ...

    def stats(self) -> dict[str, int]:
        """Counters of the link."""
        ...

    def close(self) -> None:
        """Disarm the controller (close valves), stop the thread and release the port."""
        ...
