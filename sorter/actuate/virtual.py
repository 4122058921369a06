"""In-process actuator for the simulated line: commands go straight to the virtual device.

The virtual valve bank and robot (``sorter/sim``) behave like a controller
that counts encoder pulses: they accept position-stamped commands, refuse the
ones whose position has already passed (``late``: never executed), and execute
the others when the belt reaches them, with the valve physics of the simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sorter.clock import Clock
from sorter.entities import Command, CommandReport, FireCommand


class VirtualActuator:
    """Actuator over a ``ValveBankModel`` or a ``RobotModel`` of the simulator."""

    def __init__(self, world: Any, device: Any, clock: Clock) -> None:
        self._world = world
        self._device = device
        self._clock = clock
        self._reports: list[CommandReport] = []
        self._seen = 0
        self._is_bank = hasattr(device, "schedule")
        self._stats = {"sent": 0, "accepted": 0, "late": 0, "rejected": 0, "cancelled": 0}

    def submit(self, commands: Sequence[Command]) -> None:
        w = self._world
        with w.lock:
            w.advance_to(max(self._clock.now_ns(), w.now_ns))
            for c in commands:
                if isinstance(c, FireCommand):
                    status = self._device.schedule(c.command_id, c.valve_first, c.valve_last, c.s_open_mm, c.s_close_mm)
                else:
                    status = self._device.schedule_pick(c.command_id, c.x_mm, c.u_mm, c.s_pick_mm)
                self._stats["sent"] += 1
                self._stats[status] = self._stats.get(status, 0) + 1
                self._reports.append(CommandReport(c.command_id, status))

    def cancel(self, command_ids: Sequence[int]) -> None:
        for cid in command_ids:
            if self._device.cancel(cid):
                self._stats["cancelled"] += 1
                self._reports.append(CommandReport(cid, "cancelled"))

    def poll_reports(self) -> list[CommandReport]:
        w = self._world
        with w.lock:
            records = self._device.executed_since(self._seen)
            self._seen += len(records)
            out, self._reports = self._reports, []
        for r in records:
            if self._is_bank:
                out.append(CommandReport(r.command_id, "executed", r.s_switch_mm, "truncated" if r.truncated else ""))
            else:
                out.append(CommandReport(r.command_id, "executed", r.s_mm, "picked" if r.success else "missed"))
        return out

    def wait_idle(self, timeout_s: float) -> bool:
        return True

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    def close(self) -> None:
        if self._is_bank:
            self._device.close_all()
