"""Actuator over a real controller link (serial valve controller or Modbus PLC).

The sorter side of ``firmware_bridge``: converts ``FireCommand``/``PickCommand``
(odometer millimetres) to position-stamped wire commands (encoder counts,
``belt.encoder_counts_per_mm``), hands them to the link's thread, and turns
the controller's answers back into ``CommandReport``s.

With a simulated plant and ``actuator.emulator: true`` the link is opened
(``sorter.actuate.links``) against the matching device emulator, whose device
model the plant lends (the simulator's valve bank or robot), so the run pushes
real bytes through real transports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from firmware_bridge.link import ControllerLink, LinkEvent
from firmware_bridge.messages import Fire, Pick
from sorter.actuate.base import Actuator, EncoderReading, PlantPort
from sorter.actuate.links import (
    link_counts_per_mm,
    link_kind,
    link_max_counts_per_s,
    link_where,
    open_link,
    simulation_limits,
    start_emulator,
)
from sorter.clock import Clock
from sorter.entities import Command, CommandReport, FireCommand
from sorter.errors import ConfigError, DeviceNotConnectedError

if TYPE_CHECKING:
    from firmware_bridge.controller import ControllerLimits
    from firmware_bridge.device import DeviceModel
    from firmware_bridge.emulators.plc import PlcEmulator
    from firmware_bridge.emulators.valve_controller import ValveControllerEmulator
    from sorter.actuate.firmware_board import FirmwareBoard
    from sorter.config import Config

log = logging.getLogger(__name__)

_U32 = 0xFFFFFFFF
_I64 = 1 << 63
_I32 = 1 << 31
LINK_PROCESS_READY_S = 15.0


def to_wire(command: Command, counts_per_mm: float) -> Fire | Pick:
    """The wire command of a sorter command (positions rounded to the nearest count).

    Raises:
        ValueError: a field does not fit the wire format (id over 32 bits, position over 64 bits).
    """
    if not 0 <= command.command_id <= _U32:
        raise ValueError(f"command id {command.command_id} does not fit 32 bits")
    if isinstance(command, FireCommand):
        o = round(command.s_open_mm * counts_per_mm)
        c = round(command.s_close_mm * counts_per_mm)
        if not (-_I64 <= o < _I64 and -_I64 <= c < _I64):
            raise ValueError(f"positions {command.s_open_mm}..{command.s_close_mm} mm overflow 64-bit counts")
        if not (0 <= command.valve_first <= 0xFFFF and 0 <= command.valve_last <= 0xFFFF):
            raise ValueError(f"valves {command.valve_first}..{command.valve_last} outside 0..65535")
        return Fire(command.command_id, command.valve_first, command.valve_last, o, max(c, o + 1))
    x_um = round(command.x_mm * 1000.0)
    y_um = round((command.u_mm + command.s_pick_mm) * 1000.0)
    p = round(command.s_pick_mm * counts_per_mm)
    if not (-_I32 <= x_um < _I32 and -_I32 <= y_um < _I32 and -_I64 <= p < _I64):
        raise ValueError(f"pick point ({command.x_mm}, {command.u_mm + command.s_pick_mm}) mm does not fit the wire format")
    return Pick(command.command_id, x_um, y_um, p)


def to_report(event: LinkEvent, counts_per_mm: float) -> CommandReport:
    """The ``CommandReport`` of a link event (the actual position in odometer mm)."""
    s = event.open_count / counts_per_mm if event.open_count is not None else None
    return CommandReport(event.command_id, event.status, s_actual_mm=s, detail=event.detail)


def device_reports_in(link_stats: dict[str, int], device_executions: int) -> bool:
    """Whether the host has heard of every execution the (emulated) device recorded.

    A command the host finished as lost (an encoder epoch change, a controller
    restart) may have executed on the device without its report reaching the
    host, and that report never comes: it counts as heard of. Waiting for it
    would stall every later cycle for the whole timeout. So does a report that
    came for a command the host had finished late, rejected or cancelled (``executed_after_outcome``).
    """
    heard = link_stats.get("executed", 0) + link_stats.get("lost", 0) + link_stats.get("executed_after_outcome", 0)
    return heard >= device_executions


class BridgeActuator:
    """``Actuator`` over a ``firmware_bridge`` link.

    Args:
        link: a started link (serial or Modbus).
        counts_per_mm: ``belt.encoder_counts_per_mm``.
        on_close: stops whatever the factory started with it (emulator, pseudo-terminals).
        device_executions: in simulation, the number of commands the device has executed so far;
            ``wait_idle`` then also waits until their reports have come back over the link, so
            fast runs do not depend on thread timing.
        emulator: in simulation, the device emulator started with the link (a PLC or valve-controller
            emulator); kept so that a simulated run can take the controller off the network and back.
    """

    def __init__(
        self,
        link: ControllerLink,
        counts_per_mm: float,
        on_close: Callable[[], None] | None = None,
        device_executions: Callable[[], int] | None = None,
        emulator: ValveControllerEmulator | PlcEmulator | FirmwareBoard | None = None,
    ) -> None:
        self.link = link
        self.emulator = emulator
        self.cpm = float(counts_per_mm)
        self._on_close = on_close
        self._device_executions = device_executions
        self._local: list[CommandReport] = []
        self._executed_seen = 0
        self._closed = False

    def submit(self, commands: Sequence[Command]) -> None:
        for c in commands:
            try:
                wire = to_wire(c, self.cpm)
            except ValueError as e:
                self._local.append(CommandReport(c.command_id, "rejected", detail=str(e)))
                continue
            self.link.submit(wire)

    def cancel(self, command_ids: Sequence[int]) -> None:
        for cid in command_ids:
            self.link.cancel(cid)

    def poll_reports(self) -> list[CommandReport]:
        out, self._local = self._local, []
        for ev in self.link.poll_events():
            if ev.status == "executed":
                self._executed_seen += 1
            out.append(to_report(ev, self.cpm))
        return out

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        if not self.link.wait_idle(timeout_s):
            return False
        if self._device_executions is None:
            return True
        while not device_reports_in(self.link.stats(), self._device_executions()):
            self.link.fetch_reports()  # a PLC is polled: ask now rather than at the next poll
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.0002)
        return True

    def link_health(self) -> str | None:
        """None while the link runs; else why it does not (a supervised link process died and is restarting)."""
        health = getattr(self.link, "health", None)
        return health() if callable(health) else None

    def watch_link(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener`` at once with a reason when a supervised link dies, and with None when it is back."""
        if hasattr(self.link, "on_health"):
            self.link.on_health = listener

    def encoder(self) -> EncoderReading | None:
        """The controller's encoder, synchronised by the link's probes."""
        return self.link.sync

    def stats(self) -> dict[str, int]:
        s = {f"link_{k}": int(v) for k, v in self.link.stats().items()}
        st = self.link.last_status()
        if st is not None:
            s["controller_executed"] = st.executed
            s["controller_late"] = st.late
            s["controller_rejected"] = st.rejected
            s["controller_bad_frames"] = st.bad_frames
            s["controller_watchdog_trips"] = st.watchdog_trips
        stalls = getattr(self.emulator, "stalls", None)
        if stalls is not None:  # the emulated firmware board: how often this machine's load starved it
            s["board_stalls"] = int(stalls)
            s["board_behind_worst_ms"] = round(float(getattr(self.emulator, "behind_worst_ms", 0.0)))
        s["sent"] = s.get("link_sent", 0)
        s["executed"] = s.get("link_executed", 0)
        s["late"] = s.get("link_late", 0)
        s["rejected"] = s.get("link_rejected", 0)
        s["cancelled"] = s.get("link_cancelled", 0)
        s["lost"] = s.get("link_lost", 0)
        s["reconnects"] = s.get("link_reconnects", 0)
        return s

    def finish_outstanding(self) -> None:
        """End of a run: close the link (controller disarmed, valves shut) so that every command still out
        gets its outcome (``cancelled`` by the DISARM, or ``lost``), read by the next ``poll_reports``."""
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.link.close()
        finally:
            if self._on_close is not None:
                self._on_close()


# ------------------------------------------------------------------ factory


def create_bridge_actuator(cfg: Config, clock: Clock, plant: PlantPort) -> Actuator:
    """Build the actuator for ``actuator.type`` ``serial`` or ``modbus``.

    Args:
        cfg: the configuration.
        clock: the sorter's clock (unused by the link, which keeps wall time for timeouts and heartbeats).
        plant: a simulated plant lends the device an emulator drives (with ``actuator.emulator``); a real one nothing.

    Raises:
        ConfigError: not a controller link type.
        DeviceNotConnectedError: the controller did not answer at start-up.
    """
    a = cfg.actuator
    cpm = link_counts_per_mm(cfg)
    device = plant.emulated_device(cpm) if a.emulator else None
    if device is not None and a.emulator == "firmware":
        check_firmware_line(cfg, clock)
    limits = simulation_limits(cfg.airjet.valves.max_pulse_ms) if device is not None else None
    # the firmware reports its own executions; the simulator only sees its pins
    executions = device.executions_recorded if device is not None and a.emulator != "firmware" else None
    if cfg.runtime.link_process:
        return _process_actuator(cfg, cpm, device, limits, executions)
    opened = open_link(a, emulate=device, limits=limits, max_counts_per_s=link_max_counts_per_s(cfg))
    opened.wait_ready_or_raise(3.0)
    log.info("actuator: %s ready", opened.where)
    return BridgeActuator(opened.link, cpm, on_close=opened.stop_emulator, device_executions=executions, emulator=opened.emulator)


def check_firmware_line(cfg: Config, clock: Clock) -> None:
    """What the emulated firmware needs of a simulated line.

    Raises:
        ConfigError: a setting the board cannot follow, naming the key and the fix.
    """
    from sorter.actuate.firmware_board import FIRMWARE_VALVES
    from sorter.clock import MonotonicClock

    fix = "actuator.emulator = 'firmware'"
    if not isinstance(clock, MonotonicClock):
        raise ConfigError(f"{fix} runs the microcontroller in real time: run without --fast (e.g. --duration 20)")
    if cfg.line.mode != "airjet":
        raise ConfigError(f"{fix} is a valve controller: line.mode = {cfg.line.mode!r} needs 'airjet'")
    if cfg.airjet.valves.count > FIRMWARE_VALVES:
        raise ConfigError(
            f"airjet.valves.count = {cfg.airjet.valves.count}: {fix} switches at most {FIRMWARE_VALVES} valves; "
            f"set airjet.valves.count: {FIRMWARE_VALVES} (and pitch_mm to cover the belt)"
        )
    if cfg.sim.speed_drift_fraction != 0 or cfg.sim.speed_steps:
        raise ConfigError(
            f"sim.speed_drift_fraction = {cfg.sim.speed_drift_fraction:g}, sim.speed_steps = {list(cfg.sim.speed_steps)}: "
            f"{fix} drives the board's encoder at one constant speed; set sim.speed_drift_fraction: 0 and sim.speed_steps: []"
        )


def _process_actuator(
    cfg: Config,
    cpm: float,
    device: DeviceModel | None,
    limits: ControllerLimits | None,
    executions: Callable[[], int] | None,
) -> BridgeActuator:
    """The actuator over a link run in its own supervised process (``runtime.link_process``); an emulator stays here."""
    from sorter.actuate.link_process import ProcessLink

    a = cfg.actuator
    kind = link_kind(a)
    peer = start_emulator(a, kind, device, limits) if device is not None else None
    target = peer.actuator if peer is not None else a
    where, fix = link_where(target, kind, emulated=peer is not None)
    rate = link_max_counts_per_s(cfg)
    link = ProcessLink(target, kind, where, rt_priority=cfg.runtime.link_priority, max_counts_per_s=rate)
    on_close = peer.stop if peer is not None else None
    try:
        link.start()
        # a spawned process imports the link's modules first: seconds on a busy machine
        if not link.wait_ready(LINK_PROCESS_READY_S):
            raise DeviceNotConnectedError(f"{where} did not answer within {LINK_PROCESS_READY_S:g} s; {fix}")
    except BaseException:
        link.close()
        if on_close is not None:
            on_close()
        raise
    log.info("actuator: %s ready (link in its own process, %s)", where, link.priority)
    return BridgeActuator(
        link, cpm, on_close=on_close, device_executions=executions, emulator=peer.emulator if peer is not None else None
    )
