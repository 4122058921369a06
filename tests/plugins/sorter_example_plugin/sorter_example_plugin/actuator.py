"""``actuator.type: example_log``: writes every command as a JSON line to ``options.path``, fires nothing.

A stand-in for a vendor's driver: it accepts what it is given, counts, and closes its file on ``close``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sorter.entities import Command, CommandReport


class LogActuator:
    """An ``Actuator`` that logs commands."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._reports: list[CommandReport] = []
        self._sent = 0
        self._cancelled = 0

    def submit(self, commands: Sequence[Command]) -> None:
        for c in commands:
            self._file.write(json.dumps({"kind": type(c).__name__, **asdict(c)}) + "\n")
            self._reports.append(CommandReport(c.command_id, "accepted"))
            self._sent += 1
        self._file.flush()

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
        return {"sent": self._sent, "cancelled": self._cancelled}

    def encoder(self) -> None:
        return None

    def close(self) -> None:
        self._file.close()


def create(cfg: Any, clock: Any, plant: Any) -> LogActuator:
    """Factory of the ``sorter.actuators`` entry point."""
    del clock, plant
    return LogActuator(Path(str(dict(cfg.actuator.options).get("path", "example-commands.jsonl"))))
