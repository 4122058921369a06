"""Dry-run actuator: records and logs commands, executes nothing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sorter.actuate.base import Actuator, EncoderReading, PlantPort
from sorter.clock import Clock
from sorter.entities import Command, CommandReport

if TYPE_CHECKING:
    from sorter.config import Config

log = logging.getLogger(__name__)


class DryRunActuator:
    """Accepts every command, keeps a record, and logs it at INFO level.

    Used for commissioning a camera and detector before any valve is wired,
    and in tests of the planner output.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.sent: list[tuple[int, Command]] = []
        self._reports: list[CommandReport] = []
        self._cancelled = 0

    def submit(self, commands: Sequence[Command]) -> None:
        t_ns = self._clock.now_ns()
        for c in commands:
            self.sent.append((t_ns, c))
            self._reports.append(CommandReport(c.command_id, "accepted"))
            log.info("dry-run: %s", c)

    def cancel(self, command_ids: Sequence[int]) -> None:
        for cid in command_ids:
            self._reports.append(CommandReport(cid, "cancelled"))
            self._cancelled += 1

    def poll_reports(self) -> list[CommandReport]:
        out, self._reports = self._reports, []
        return out

    def wait_idle(self, timeout_s: float) -> bool:
        return True

    def stats(self) -> dict[str, int]:
        return {"sent": len(self.sent), "cancelled": self._cancelled}

    def encoder(self) -> EncoderReading | None:
        """None: no controller, so no encoder."""
        return None

    def close(self) -> None:
        return None


def create_dry_run_actuator(cfg: Config, clock: Clock, plant: PlantPort) -> Actuator:
    """``actuator.type: dry_run``: log and record commands, execute nothing (on any line)."""
    del cfg, plant
    return DryRunActuator(clock)
