"""What the simulated plant lends its actuator (``sorter.actuate.base.PlantPort``): the virtual valve bank or robot.

Three ways in, one device: called in process (``actuator.type: virtual``), behind a
controller emulator (``serial`` / ``modbus`` with ``actuator.emulator``), or switched
"now" by the host-timed actuator (``host_timed``, air-jet lines) with the simulated
belt as its odometer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sorter.entities import Command, CommandReport, FireCommand
from sorter.sim.device import SimDevice
from sorter.sim.ejector import ValveBankModel
from sorter.sim.robot import RobotModel

if TYPE_CHECKING:
    from sorter.actuate.base import OdometerSource, RelayOutput
    from sorter.clock import Clock
    from sorter.sim.world import SimWorld


class SimInProcessDevice:
    """The valve bank or robot called directly (``sorter.actuate.base.InProcessDevice``).

    Each call brings the world to the caller's time first, under the world's lock, so
    a command is judged late or not at the moment it is submitted.
    """

    def __init__(self, world: SimWorld, device: ValveBankModel | RobotModel) -> None:
        self._world = world
        self._device = device
        self._seen = 0
        self._reported: set[int] = set()  # executed already reported at the line's stop (cut short)

    def schedule(self, commands: Sequence[Command], now_ns: int) -> list[str]:
        w, d = self._world, self._device
        answers: list[str] = []
        with w.lock:
            w.advance_to(max(now_ns, w.now_ns))
            for c in commands:
                if isinstance(c, FireCommand):
                    if isinstance(d, ValveBankModel):
                        answers.append(d.schedule(c.command_id, c.valve_first, c.valve_last, c.s_open_mm, c.s_close_mm))
                    else:
                        answers.append("rejected")
                elif isinstance(d, RobotModel):
                    answers.append(d.schedule_pick(c.command_id, c.x_mm, c.u_mm, c.s_pick_mm))
                else:
                    answers.append("rejected")
        return answers

    def cancel(self, command_id: int) -> bool:
        return bool(self._device.cancel(command_id))

    def executions(self) -> list[CommandReport]:
        d = self._device
        with self._world.lock:
            out: list[CommandReport] = []
            if isinstance(d, ValveBankModel):
                pulses = d.executed_since(self._seen)
                self._seen += len(pulses)
                out = [
                    CommandReport(r.command_id, "executed", r.s_switch_mm, "truncated" if r.truncated else "")
                    for r in pulses
                    if r.command_id not in self._reported
                ]
            else:
                picks = d.executed_since(self._seen)
                self._seen += len(picks)
                out = [CommandReport(r.command_id, "executed", r.s_mm, "picked" if r.success else "missed") for r in picks]
        return out

    def close_all(self) -> None:
        if isinstance(self._device, ValveBankModel):
            self._device.close_all()

    def finish(self) -> list[CommandReport]:
        """The line stops: what has not started by the world's time is dropped (``cancelled``); a pulse blowing
        is ``executed``, cut short when the valves close. The world is not moved (the run's score is its state
        now, the cut pulse's air is judged at the valves' close)."""
        d = self._device
        stopped = "the line stopped"
        with self._world.lock:
            out = [CommandReport(cid, "cancelled", None, stopped) for cid in d.pending_ids() if d.cancel(cid)]
            if isinstance(d, ValveBankModel):  # cancel refuses a pulse already blowing
                cut = d.blowing()
                self._reported.update(cid for cid, _s in cut)
                out += [CommandReport(cid, "executed", s_mm, f"cut short: {stopped}") for cid, s_mm in cut]
            return out


class SimRelayOutput:
    """The simulator's valve bank switched "now": a pulse from the current odometer to the commanded close."""

    def __init__(self, world: SimWorld, bank: ValveBankModel, clock: Clock) -> None:
        self.world = world
        self.bank = bank
        self.clock = clock

    def open(self, valve_first: int, valve_last: int, command_id: int, s_close_mm: float, not_after_ns: int) -> int | None:
        with self.world.lock:  # the world must not advance between reading "now" and switching
            t = max(self.clock.now_ns(), self.world.now_ns)
            if t > not_after_ns:  # the lock was held (a frame drawn) past the switch's last moment
                return None
            s_now = self.world.odometer_mm(t) + 1e-6
            result = self.bank.schedule(command_id, valve_first, valve_last, s_now, max(s_close_mm, s_now + 0.1))
        return t if str(result) == "accepted" else None

    def close(self, valve_first: int, valve_last: int, command_id: int) -> None:
        """The simulated pulse ends at its commanded close (scheduled at open)."""

    def close_all(self) -> None:
        self.bank.close_all()


class WorldOdometer:
    """``OdometerSource`` of the simulated belt."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world

    def odometer_mm(self, t_ns: int) -> float:
        return float(self.world.odometer_mm(t_ns))

    def speed_mm_s(self, t_ns: int) -> float:
        return float(self.world.speed_mm_s(t_ns))


class SimOutputs:
    """``sorter.actuate.base.PlantPort`` of the simulated line.

    Args:
        world: the virtual line.
        device: its valve bank (air-jet lines) or robot.
    """

    def __init__(self, world: SimWorld, device: ValveBankModel | RobotModel) -> None:
        self.world = world
        self.device = device

    def in_process_device(self) -> SimInProcessDevice:
        return SimInProcessDevice(self.world, self.device)

    def emulated_device(self, counts_per_mm: float) -> SimDevice:
        return SimDevice(self.world, self.device, counts_per_mm)

    def relay_output(self, clock: Clock) -> tuple[OdometerSource, RelayOutput] | None:
        if not isinstance(self.device, ValveBankModel):
            return None
        return WorldOdometer(self.world), SimRelayOutput(self.world, self.device, clock)
