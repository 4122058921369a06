"""The simulator's valve bank (or robot) as the device model of a firmware_bridge emulator.

In the simulated line the emulated controller or PLC does not run its own
encoder: its encoder is the virtual belt's (``SimWorld.encoder_count`` at the
world's current time) and its outputs are the simulator's ``ValveBankModel``
(or ``RobotModel``), which switches exactly when the odometer reaches the
commanded position, so real bytes go through real transports while the physics
and scoring stay those of ``sorter/sim``.

Positions cross the wire in encoder counts; this adapter converts them back
to odometer millimetres with the link's counts per mm (``actuator.counts_per_mm``,
by default ``belt.encoder_counts_per_mm``).
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

from firmware_bridge.device import Execution, ScheduleResult
from sorter.sim.ejector import ValveBankModel
from sorter.sim.records import PickRecord, PulseRecord
from sorter.sim.robot import RobotModel

if TYPE_CHECKING:
    from sorter.sim.world import SimWorld


class SimDevice:
    """``firmware_bridge.device.DeviceModel`` over a simulated valve bank or robot.

    Args:
        world: the virtual line (its encoder and clock).
        device: the simulated valve bank or robot.
        counts_per_mm: the emulated controller's position units per mm (``actuator.counts_per_mm``,
            else ``belt.encoder_counts_per_mm``).
    """

    def __init__(self, world: SimWorld, device: ValveBankModel | RobotModel, counts_per_mm: float) -> None:
        self.world = world
        self.device = device
        self.cpm = float(counts_per_mm)
        self.is_valve_bank = isinstance(device, ValveBankModel)
        self._lock = threading.Lock()
        self._done: list[Execution] = []
        self._active: dict[int, tuple[int, int, float, float]] = {}  # fire id -> valves and commanded span (mm)
        self._recorded = 0
        device.add_listener(self._on_record)

    # ------------------------------------------------------------- protocol

    @property
    def valve_count(self) -> int:
        return self.device.valve_count if isinstance(self.device, ValveBankModel) else 0

    def encoder_count(self) -> int:
        # the controller's own count at its resolution (which may be finer than the belt encoder's)
        return math.floor(self.world.odometer_mm(self.world.now_ns) * self.cpm)

    def speed_counts_per_s(self) -> float:
        return self.world.speed_mm_s(self.world.now_ns) * self.cpm

    def device_time_us(self) -> int:
        return (self.world.now_ns - self.world.t0_ns) // 1000

    def schedule_fire(
        self, command_id: int, valve_first: int, valve_last: int, open_count: int, close_count: int
    ) -> ScheduleResult:
        if not isinstance(self.device, ValveBankModel):
            return "rejected"
        s_open = open_count / self.cpm
        s_close = close_count / self.cpm
        result = str(self.device.schedule(command_id, valve_first, valve_last, s_open, s_close))
        if result == "accepted":
            with self._lock:
                self._active[command_id] = (valve_first, valve_last, s_open, s_close)
            return "accepted"
        return "late" if result == "late" else "rejected"

    def schedule_pick(self, command_id: int, x_um: int, y_um: int, pick_count: int) -> ScheduleResult:
        if not isinstance(self.device, RobotModel):
            return "rejected"
        s_pick = pick_count / self.cpm
        result = str(self.device.schedule_pick(command_id, x_um / 1000.0, y_um / 1000.0 - s_pick, s_pick))
        return "accepted" if result == "accepted" else ("late" if result == "late" else "rejected")

    def cancel(self, command_id: int) -> bool:
        ok = bool(self.device.cancel(command_id))
        if ok:
            with self._lock:
                self._active.pop(command_id, None)
        return ok

    def close_all(self) -> None:
        if isinstance(self.device, ValveBankModel):
            self.device.close_all()
        with self._lock:
            self._active.clear()

    def open_valve_count(self) -> int:
        """Valves whose commanded pulse spans the current odometer (the controller's outputs)."""
        s_now = self.world.odometer_mm(self.world.now_ns)
        with self._lock:
            valves: set[int] = set()
            for first, last, s_open, s_close in self._active.values():
                if s_open <= s_now < s_close:
                    valves.update(range(first, last + 1))
            return len(valves)

    def poll_executed(self) -> list[Execution]:
        with self._lock:
            done, self._done = self._done, []
            return done

    def tick(self) -> None:
        """Nothing to do: the world runs the pulses when it advances."""

    # ------------------------------------------------ driven by a controller's pins

    @property
    def t0_ns(self) -> int:
        """Monotonic time of the world's start (odometer 0)."""
        return self.world.t0_ns

    def valve_pulse(self, command_id: int, valve_first: int, valve_last: int, t_open_ns: int, t_close_ns: int) -> None:
        """Air that the emulated firmware's valve pins switched (``sorter.actuate.firmware_board``)."""
        if isinstance(self.device, ValveBankModel):
            self.device.blow(command_id, valve_first, valve_last, t_open_ns, t_close_ns)
        with self._lock:  # the firmware reports its executions itself (FIRED): nothing to poll here
            self._done.clear()

    def follow_pins(self, lag_mm: float) -> None:
        """The pins are read some milliseconds after they switched: keep objects on the belt ``lag_mm`` past the
        jet line so that air already blown is still evaluated against them."""
        if isinstance(self.device, ValveBankModel):
            self.world.register_device_line(self.device.y_eject_mm + lag_mm)

    # -------------------------------------------------------------- records

    def _on_record(self, rec: PulseRecord | PickRecord) -> None:
        """Listener called by the device under the world lock: only record."""
        if isinstance(rec, PulseRecord):
            pulse = rec
            open_count = round(pulse.s_open_cmd_mm * self.cpm)
            close_mm = pulse.s_close_actual_mm if pulse.truncated else pulse.s_close_cmd_mm
            close_count = math.floor(close_mm * self.cpm) if pulse.truncated else round(close_mm * self.cpm)
            e = Execution(pulse.command_id, "fire", open_count, max(open_count, close_count))
        else:
            pick = rec
            c = round(pick.s_mm * self.cpm)
            e = Execution(pick.command_id, "pick", c, c)
        with self._lock:
            self._active.pop(e.command_id, None)
            self._done.append(e)
            self._recorded += 1

    def executions_recorded(self) -> int:
        """Commands the simulated device has executed so far (each is reported over the link)."""
        with self._lock:
            return self._recorded
