"""An encoder counter that can be re-zeroed, over any ``DeviceModel`` (the emulated PLC's counter register).

A PLC counts encoder pulses in a counter it can reset (homing, an operator, a
power cycle). ``RezeroableDevice`` shows the wrapped device's count minus an
offset and translates every position it is given or reports, so the PLC
emulator can re-zero its count while the belt (the wrapped device) runs on.
"""

from __future__ import annotations

import threading

from firmware_bridge.device import DeviceModel, Execution, ScheduleResult


class RezeroableDevice:
    """``DeviceModel`` whose encoder count can be set back to zero (implements ``DeviceModel``).

    Args:
        inner: the device whose encoder and outputs are used.
    """

    def __init__(self, inner: DeviceModel) -> None:
        self.inner = inner
        self._offset = 0
        self._lock = threading.Lock()

    def rezero(self) -> None:
        """The count reads 0 from now on. Close outputs and collect executions first: they are reported in the old count."""
        with self._lock:
            self._offset = self.inner.encoder_count()

    @property
    def offset(self) -> int:
        """Count of the wrapped device at the last re-zero."""
        return self._offset

    @property
    def valve_count(self) -> int:
        return self.inner.valve_count

    def encoder_count(self) -> int:
        return self.inner.encoder_count() - self._offset

    def speed_counts_per_s(self) -> float:
        return self.inner.speed_counts_per_s()

    def device_time_us(self) -> int:
        return self.inner.device_time_us()

    def schedule_fire(
        self, command_id: int, valve_first: int, valve_last: int, open_count: int, close_count: int
    ) -> ScheduleResult:
        off = self._offset
        return self.inner.schedule_fire(command_id, valve_first, valve_last, open_count + off, close_count + off)

    def schedule_pick(self, command_id: int, x_um: int, y_um: int, pick_count: int) -> ScheduleResult:
        return self.inner.schedule_pick(command_id, x_um, y_um, pick_count + self._offset)

    def cancel(self, command_id: int) -> bool:
        return self.inner.cancel(command_id)

    def close_all(self) -> None:
        self.inner.close_all()

    def open_valve_count(self) -> int:
        return self.inner.open_valve_count()

    def poll_executed(self) -> list[Execution]:
        off = self._offset
        return [Execution(e.command_id, e.kind, e.open_count - off, e.close_count - off) for e in self.inner.poll_executed()]

    def tick(self) -> None:
        self.inner.tick()
