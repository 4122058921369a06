"""What an emulated controller drives: the device-model protocol and a built-in model.

A real valve controller or PLC counts encoder pulses in hardware and switches
its outputs on a compare match. The emulators hand that part to a
``DeviceModel``: the built-in ``FreeRunningDevice`` below (its own encoder
advancing at a set speed on the monotonic clock, used by the runnable
emulators), or, in the simulated line, an adapter to the simulator's valve bank
whose encoder is the virtual belt's.

Every method may be called from the emulator's I/O thread and its tick thread;
implementations must be thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

ScheduleResult = Literal["accepted", "late", "rejected"]


@dataclass(frozen=True, slots=True)
class Execution:
    """A command the device has carried out.

    Attributes:
        command_id: the command.
        kind: ``"fire"`` or ``"pick"``.
        open_count: encoder count at which the valves opened (pick: when the gripper closed).
        close_count: encoder count at which the valves closed (pick: same as ``open_count``).
    """

    command_id: int
    kind: Literal["fire", "pick"]
    open_count: int
    close_count: int


class DeviceModel(Protocol):
    """Encoder, outputs and compare-match timing of one controller."""

    @property
    def valve_count(self) -> int:
        """Number of valve outputs (indices 0..valve_count-1)."""
        ...

    def encoder_count(self) -> int:
        """Current encoder count (belt odometer in counts)."""
        ...

    def speed_counts_per_s(self) -> float:
        """Current belt speed in counts per second of device time (0 when stopped)."""
        ...

    def device_time_us(self) -> int:
        """The device's own clock, microseconds."""
        ...

    def schedule_fire(
        self, command_id: int, valve_first: int, valve_last: int, open_count: int, close_count: int
    ) -> ScheduleResult:
        """Arm a pulse: open the valves when the encoder reaches ``open_count``, close at ``close_count``."""
        ...

    def schedule_pick(self, command_id: int, x_um: int, y_um: int, pick_count: int) -> ScheduleResult:
        """Arm a pick at ``pick_count`` (``"rejected"`` if this device has no robot)."""
        ...

    def cancel(self, command_id: int) -> bool:
        """Drop a scheduled command that has not started; True if it was dropped."""
        ...

    def close_all(self) -> None:
        """Close every valve now and drop everything scheduled (fail-safe)."""
        ...

    def open_valve_count(self) -> int:
        """Number of valves open right now."""
        ...

    def poll_executed(self) -> list[Execution]:
        """Return and forget the commands completed since the last call."""
        ...

    def tick(self) -> None:
        """Give the model a chance to switch outputs; the emulator calls this every ~0.5 ms."""
        ...


@dataclass
class _Pulse:
    command_id: int
    kind: Literal["fire", "pick"]
    valve_first: int
    valve_last: int
    open_count: int
    close_count: int
    is_open: bool = False


class FreeRunningDevice:
    """A controller with its own encoder running at a fixed speed (standalone emulators, tests).

    Outputs switch on compare match: a pulse opens at exactly ``open_count`` and
    closes at exactly ``close_count`` (as a hardware timer/ISR would), however
    late ``tick`` runs; a ``close_all`` closes at the current count.

    Args:
        valve_count: number of outputs.
        speed_counts_per_s: encoder rate; e.g. 2.5 m/s x 10 counts/mm = 25000.
        time_ns: monotonic time source in ns (injectable for tests).
        start_count: encoder count at construction.
    """

    def __init__(
        self,
        valve_count: int = 64,
        speed_counts_per_s: float = 25000.0,
        time_ns: Callable[[], int] = time.monotonic_ns,
        start_count: int = 0,
    ) -> None:
        self._valve_count = valve_count
        self._speed = float(speed_counts_per_s)
        self._time_ns = time_ns
        self._t0_ns = time_ns()
        self._count0 = start_count
        self._t_us0 = 0  # device clock at _t0_ns (the clock never jumps when the count is reset)
        self._lock = threading.Lock()
        self._pulses: dict[int, _Pulse] = {}
        self._done: list[Execution] = []
        self._open: set[int] = set()

    @property
    def valve_count(self) -> int:
        return self._valve_count

    def encoder_count(self) -> int:
        return self._count0 + int(self._speed * (self._time_ns() - self._t0_ns) / 1e9)

    def speed_counts_per_s(self) -> float:
        return self._speed

    def set_speed(self, speed_counts_per_s: float) -> None:
        """Change the belt speed from now on (the count stays continuous)."""
        with self._lock:
            now = self._time_ns()
            self._t_us0 = self.device_time_us()
            self._count0 = self._count0 + int(self._speed * (now - self._t0_ns) / 1e9)
            self._t0_ns = now
            self._speed = float(speed_counts_per_s)

    def set_count(self, count: int) -> None:
        """Set the encoder count now (an operator re-zeroing the counter, a homing run); the speed is kept."""
        with self._lock:
            now = self._time_ns()
            self._t_us0 = self.device_time_us()
            self._count0 = count
            self._t0_ns = now

    def device_time_us(self) -> int:
        return self._t_us0 + (self._time_ns() - self._t0_ns) // 1000

    def schedule_fire(
        self, command_id: int, valve_first: int, valve_last: int, open_count: int, close_count: int
    ) -> ScheduleResult:
        if not 0 <= valve_first <= valve_last < self._valve_count or close_count < open_count:
            return "rejected"
        with self._lock:
            if open_count <= self.encoder_count():
                return "late"
            self._pulses[command_id] = _Pulse(command_id, "fire", valve_first, valve_last, open_count, close_count)
        return "accepted"

    def schedule_pick(self, command_id: int, x_um: int, y_um: int, pick_count: int) -> ScheduleResult:
        with self._lock:
            if pick_count <= self.encoder_count():
                return "late"
            self._pulses[command_id] = _Pulse(command_id, "pick", 0, -1, pick_count, pick_count)
        return "accepted"

    def cancel(self, command_id: int) -> bool:
        with self._lock:
            p = self._pulses.get(command_id)
            if p is None or p.is_open:
                return False
            del self._pulses[command_id]
            return True

    def close_all(self) -> None:
        with self._lock:
            now = self.encoder_count()
            for p in list(self._pulses.values()):
                if p.is_open:
                    self._done.append(Execution(p.command_id, p.kind, p.open_count, min(now, p.close_count)))
            self._pulses.clear()
            self._open.clear()

    def open_valve_count(self) -> int:
        with self._lock:
            return len(self._open)

    def poll_executed(self) -> list[Execution]:
        with self._lock:
            done, self._done = self._done, []
            return done

    def tick(self) -> None:
        with self._lock:
            now = self.encoder_count()
            for p in list(self._pulses.values()):
                if not p.is_open and p.open_count <= now:
                    p.is_open = True
                    self._open.update(range(p.valve_first, p.valve_last + 1))
                if p.is_open and p.close_count <= now:
                    self._open.difference_update(range(p.valve_first, p.valve_last + 1))
                    self._done.append(Execution(p.command_id, p.kind, p.open_count, p.close_count))
                    del self._pulses[p.command_id]
            # overlapping pulses on shared valves: keep still-open pulses' valves open
            for p in self._pulses.values():
                if p.is_open:
                    self._open.update(range(p.valve_first, p.valve_last + 1))
