"""The Actuator protocol, and what a plant lends the actuator it drives.

``actuate`` never imports the simulator: a simulated plant (``sorter.sim.plant``)
hands its devices to the actuator factories through :class:`PlantPort`, a real
plant lends nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from firmware_bridge.device import DeviceModel
from sorter.entities import Command, CommandReport

if TYPE_CHECKING:
    from sorter.clock import Clock


class EncoderReading(Protocol):
    """The controller's belt encoder as the host knows it (``firmware_bridge.sync.SyncEstimator`` qualifies)."""

    def count_at(self, host_ns: int) -> float | None:
        """The encoder count at host monotonic time ``host_ns``; None before the first reading."""
        ...

    def speed_counts_per_s(self) -> float | None:
        """Belt speed in counts per host second; None until two readings far enough apart."""
        ...


@runtime_checkable
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

    def encoder(self) -> EncoderReading | None:
        """The controller's encoder, where the actuator talks to a controller that has one (else None)."""
        ...

    def close(self) -> None:
        """Stop threads, close valves, release the link."""
        ...


class InProcessDevice(Protocol):
    """A device the actuator calls directly (the simulated valve bank or robot), position-stamped like a controller."""

    def schedule(self, commands: Sequence[Command], now_ns: int) -> list[str]:
        """Schedule commands at host time ``now_ns``; one answer per command: ``accepted``, ``late`` or ``rejected``."""
        ...

    def cancel(self, command_id: int) -> bool:
        """Drop a command that has not executed; True if it was pending."""
        ...

    def executions(self) -> list[CommandReport]:
        """``executed`` reports of the commands executed since the last call."""
        ...

    def close_all(self) -> None:
        """Close every output now."""
        ...

    def finish(self) -> list[CommandReport]:
        """The line stops: drop every command not started (``cancelled``) and report each one under way
        (``executed``, cut short): the outcome of every command still out."""
        ...


class EmulatedDevice(DeviceModel, Protocol):
    """The device model a controller emulator executes commands against, counting its executions."""

    def executions_recorded(self) -> int:
        """Commands the device has executed so far (each is reported over the link)."""
        ...


class OdometerSource(Protocol):
    """Belt odometer and speed at a host time (the encoder reading, or the simulator's belt)."""

    def odometer_mm(self, t_ns: int) -> float: ...

    def speed_mm_s(self, t_ns: int) -> float: ...


def execution_tolerance_mm(encoder_counts_per_mm: float) -> float:
    """How far past its commanded position an execution may land and still be on time: 1 mm, or two
    encoder counts where the encoder is coarser."""
    return max(1.0, 2.0 / encoder_counts_per_mm)


class RelayOutput(Protocol):
    """Outputs that switch when told.

    ``command_id`` and ``s_close_mm`` are for outputs that model or log pulses
    (the simulator); a relay board ignores them.
    """

    def open(self, valve_first: int, valve_last: int, command_id: int, s_close_mm: float, not_after_ns: int) -> int | None:
        """Switch valves on now, unless the clock already reads past ``not_after_ns`` (a switch delayed that
        long would fire late). Returns the host time of the switch, or None if nothing was switched (too
        late, or the output refused)."""
        ...

    def close(self, valve_first: int, valve_last: int, command_id: int) -> None:
        """Switch valves off now."""
        ...

    def close_all(self) -> None:
        """Switch every valve off now."""
        ...


class PlantPort(Protocol):
    """What a plant lends its actuator besides the config: the simulated line's devices, or nothing."""

    def in_process_device(self) -> InProcessDevice | None:
        """The device to call directly (``actuator.type: virtual``); None on a real line."""
        ...

    def emulated_device(self, counts_per_mm: float) -> EmulatedDevice | None:
        """The device a controller emulator drives (``actuator.emulator``), in link counts; None on a real line."""
        ...

    def relay_output(self, clock: Clock) -> tuple[OdometerSource, RelayOutput] | None:
        """Belt odometer and "switch now" outputs for host timing (``host_timed``); None where there are none."""
        ...


class NoPlant:
    """A real line's :class:`PlantPort`: it lends the actuator nothing (the actuator reaches the hardware itself)."""

    def in_process_device(self) -> InProcessDevice | None:
        return None

    def emulated_device(self, counts_per_mm: float) -> EmulatedDevice | None:
        return None

    def relay_output(self, clock: Clock) -> tuple[OdometerSource, RelayOutput] | None:
        return None
