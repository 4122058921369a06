"""The Actuator protocol: where planned commands go."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sorter.entities import Command, CommandReport


class Actuator(Protocol):
    """Sends position-stamped commands to a device and reports what happened.

    ``submit`` never blocks for long: it hands commands to the actuation thread
    (or the device) and returns. A command whose position has already passed
    when the device receives it is refused as ``late`` and never executed.
    """

    def submit(self, commands: Sequence[Command]) -> None:
        """Queue commands for execution (position-stamped, so early is fine)."""
        ...

    def cancel(self, command_ids: Sequence[int]) -> None:
        """Cancel queued commands that have not executed yet."""
        ...

    def poll_reports(self) -> list[CommandReport]:
        """Return and clear the reports received since the last call."""
        ...

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until every submitted command has an answer (ack/nak/report) or ``timeout_s`` passes.

        The fast (simulated-clock) loop calls this before advancing the world so
        results do not depend on thread scheduling. Returns True when idle.
        """
        ...

    def stats(self) -> dict[str, int]:
        """Counters: commands sent, acked, refused late, rejected, executed, reconnects..."""
        ...

    def close(self) -> None:
        """Stop threads, close valves, release the link."""
        ...
