"""In-process actuator: commands go straight to a device the plant lends (the simulated valve bank or robot).

The virtual valve bank and robot (``sorter/sim``) behave like a controller
that counts encoder pulses: they accept position-stamped commands, refuse the
ones whose position has already passed (``late``: never executed), and execute
the others when the belt reaches them, with the valve physics of the simulator.
How the simulator is driven (its lock, its clock) is the plant's part
(``sorter.sim.outputs``); this side only keeps the reports and counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sorter.actuate.base import Actuator, EncoderReading, InProcessDevice, PlantPort
from sorter.clock import Clock
from sorter.entities import Command, CommandReport
from sorter.errors import ConfigError

if TYPE_CHECKING:
    from sorter.config import Config


class VirtualActuator:
    """Actuator over an :class:`InProcessDevice`."""

    def __init__(self, device: InProcessDevice, clock: Clock) -> None:
        self._device = device
        self._clock = clock
        self._reports: list[CommandReport] = []
        self._stats = {"sent": 0, "accepted": 0, "late": 0, "rejected": 0, "cancelled": 0}

    def submit(self, commands: Sequence[Command]) -> None:
        answers = self._device.schedule(commands, self._clock.now_ns())
        for c, status in zip(commands, answers, strict=True):
            self._stats["sent"] += 1
            self._stats[status] = self._stats.get(status, 0) + 1
            self._reports.append(CommandReport(c.command_id, status))

    def cancel(self, command_ids: Sequence[int]) -> None:
        for cid in command_ids:
            if self._device.cancel(cid):
                self._stats["cancelled"] += 1
                self._reports.append(CommandReport(cid, "cancelled"))

    def poll_reports(self) -> list[CommandReport]:
        executed = self._device.executions()
        out, self._reports = self._reports, []
        return out + executed

    def wait_idle(self, timeout_s: float) -> bool:
        return True

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    def encoder(self) -> EncoderReading | None:
        """None: the simulated device's encoder is the plant's own belt."""
        return None

    def finish_outstanding(self) -> None:
        """End of a run: every command not started is ``cancelled`` (as a controller's disarm drops its
        queue) and a pulse blowing is ``executed``, cut short when the valves close; reported at the next
        ``poll_reports``, so every command sent has its outcome."""
        for report in self._device.finish():
            if report.status == "cancelled":
                self._stats["cancelled"] += 1
            self._reports.append(report)

    def close(self) -> None:
        self._device.close_all()


def create_virtual_actuator(cfg: Config, clock: Clock, plant: PlantPort) -> Actuator:
    """``actuator.type: virtual``: the simulated line's own device, called in process.

    Raises:
        ConfigError: the plant has no in-process device (a real line).
    """
    del cfg
    device = plant.in_process_device()
    if device is None:
        raise ConfigError("actuator.type 'virtual' needs the simulated line (camera.type: sim)")
    return VirtualActuator(device, clock)
