"""The one way to open a line's controller link: serial or Modbus, from the actuator config, optionally emulated.

Used by the bridge actuator (the running line), ``sorter hw`` and ``sorter check``
(commissioning), and the calibration timing rig. Every configured setting is
honoured: the serial line rate, ACK timeout and heartbeat; the Modbus transport,
address, unit id, transaction timeout and heartbeat.

With ``emulate`` the link's peer is a ``firmware_bridge`` emulator speaking the
real protocol over a real transport (a socat pseudo-terminal pair for serial and
Modbus RTU, a pymodbus server on a free loopback port for Modbus TCP), executing
commands against the device model the caller gives (the simulator's valve bank,
or a free-running encoder): ``actuate`` never builds a simulated device itself.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from firmware_bridge.controller import ControllerLimits
from firmware_bridge.device import DeviceModel
from firmware_bridge.host_session import SessionConfig
from firmware_bridge.modbus_link import ModbusLink, ModbusLinkConfig
from firmware_bridge.serial_link import SerialLink
from sorter.errors import ConfigError, DeviceNotConnectedError

if TYPE_CHECKING:
    from firmware_bridge.emulators.plc import PlcEmulator
    from firmware_bridge.emulators.valve_controller import ValveControllerEmulator
    from sorter.actuate.firmware_board import FirmwareBoard
    from sorter.config import ActuatorConfig, Config

log = logging.getLogger(__name__)

LINK_TYPES = ("serial", "modbus")
#: headroom of the count-jump check over the belt's top speed (speed estimate, sampling of the readings)
COUNT_RATE_MARGIN = 1.5


def link_counts_per_mm(cfg: Config) -> float:
    """Position units per mm on the controller link: ``actuator.counts_per_mm``, else the belt encoder's."""
    return float(cfg.actuator.counts_per_mm or cfg.belt.encoder_counts_per_mm)


def link_max_counts_per_s(cfg: Config, margin: float = COUNT_RATE_MARGIN) -> float:
    """The fastest the controller's count can move: belt top speed x link counts per mm x ``margin``.

    A count that moves further than this between two readings, without a new epoch, cannot
    be the belt: both links take it as an encoder jump (PROTOCOL.md section 4.6) and end the
    commands of the old count ``lost``. The top speed is ``belt.max_speed_mm_s``, else
    ``TOP_SPEED_FACTOR`` x ``belt.nominal_speed_mm_s`` (``sorter.config``).

    Raises:
        ValueError: ``margin`` below 1 (the check would fire on a belt at its top speed).
    """
    if not margin >= 1.0:
        raise ValueError(f"margin = {margin!r}: the count-jump check needs a margin of at least 1 over the top speed")
    return cfg.belt.top_speed_mm_s() * link_counts_per_mm(cfg) * margin


def simulation_limits(max_pulse_ms: float) -> ControllerLimits:
    """Emulator limits in simulation: refuse late exactly as the simulator does, clamp only absurd pulses.

    The PLC emulator caps the queue at its 64 slots.
    """
    return ControllerLimits(
        queue_capacity=256,
        watchdog_ms=100.0,
        min_lead_us=0,
        min_pulse_us=0,
        max_pulse_us=int(max(4 * max_pulse_ms * 1000, 200_000)),
    )


@dataclass
class OpenedLink:
    """A started link (and the emulator started for it, if any).

    Attributes:
        link: the serial or Modbus link, its thread started.
        where: the controller in words, e.g. ``valve controller on /dev/ttyACM0`` or ``PLC at 10.0.0.5:502``.
        fix: what to check when it does not answer.
        emulator: the emulator at the other end, or None.
    """

    link: SerialLink | ModbusLink
    where: str
    fix: str
    emulator: ValveControllerEmulator | PlcEmulator | FirmwareBoard | None = None
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def wait_ready_or_raise(self, timeout_s: float) -> None:
        """Wait until the controller answers (and is armed); else close everything and raise.

        Raises:
            DeviceNotConnectedError: no answer within ``timeout_s``.
        """
        if self.link.wait_ready(timeout_s):
            return
        refused = self.link.session.protocol_error if isinstance(self.link, SerialLink) else None
        self.close()
        if refused is not None:  # it answered, in another protocol version
            raise DeviceNotConnectedError(f"{self.where}: {refused}")
        raise DeviceNotConnectedError(f"{self.where} did not answer within {timeout_s:g} s; {self.fix}")

    def close(self) -> None:
        """Disarm and close the link, then stop the emulator and its transport."""
        try:
            self.link.close()
        finally:
            self.stop_emulator()

    def stop_emulator(self) -> None:
        """Stop what was started for the emulator, newest first (each even if another fails)."""
        for stop in reversed(self._stops):
            try:
                stop()
            except Exception:
                log.exception("error while stopping the emulator")
        self._stops.clear()


@dataclass
class EmulatorPeer:
    """A device emulator started for a link, and the actuator settings that reach it.

    Attributes:
        actuator: the actuator section with its port or address pointing at the emulator.
        emulator: the emulator.
        stops: what stops it and its transport, oldest first.
    """

    actuator: ActuatorConfig
    emulator: ValveControllerEmulator | PlcEmulator | FirmwareBoard
    stops: list[Callable[[], None]]

    def stop(self) -> None:
        """Stop what was started for the emulator, newest first (each even if another fails)."""
        for stop in reversed(self.stops):
            try:
                stop()
            except Exception:
                log.exception("error while stopping the emulator")
        self.stops.clear()


def link_kind(actuator: ActuatorConfig, link_type: str | None = None) -> str:
    """``serial`` or ``modbus``: ``link_type``, default ``actuator.type``.

    Raises:
        ConfigError: the type is not a controller link.
    """
    kind = link_type or actuator.type
    if kind not in LINK_TYPES:
        raise ConfigError(f"actuator.type = {kind!r} is not a controller link; use 'serial' or 'modbus'")
    return kind


def open_link(
    actuator: ActuatorConfig,
    *,
    link_type: str | None = None,
    arm: bool = True,
    emulate: DeviceModel | None = None,
    limits: ControllerLimits | None = None,
    max_counts_per_s: float | None = None,
) -> OpenedLink:
    """Open and start the controller link of ``actuator`` (not waiting for an answer: see ``wait_ready_or_raise``).

    Args:
        actuator: the ``actuator`` section (its ``serial`` or ``modbus`` settings).
        link_type: ``serial`` or ``modbus``; default ``actuator.type``.
        arm: False for a monitor that never arms the controller nor feeds its watchdog.
        emulate: run an emulator executing against this device model and connect to it instead of hardware.
        limits: the emulator's safety limits (default: the emulator's own).
        max_counts_per_s: the fastest the count can move (``link_max_counts_per_s``); None: the link's default
            (serial: unchecked, Modbus: only corrupted counts).

    Raises:
        ConfigError: the type is not a controller link.
    """
    kind = link_kind(actuator, link_type)
    peer = start_emulator(actuator, kind, emulate, limits) if emulate is not None else None
    try:
        target = peer.actuator if peer is not None else actuator
        link, where, fix = build_link(target, kind, arm, emulated=peer is not None, max_counts_per_s=max_counts_per_s)
    except BaseException:
        if peer is not None:
            peer.stop()
        raise
    opened = OpenedLink(link, where, fix, peer.emulator if peer else None, peer.stops if peer else [])
    try:
        opened.link.start()
    except BaseException:
        opened.close()
        raise
    return opened


def start_emulator(
    actuator: ActuatorConfig, kind: str, device: DeviceModel, limits: ControllerLimits | None = None
) -> EmulatorPeer:
    """Start the emulator of a ``kind`` controller (``serial`` or ``modbus``) executing against ``device``.

    Its transport is real: a socat pseudo-terminal pair (serial, Modbus RTU) or a pymodbus
    server on a free loopback port (Modbus TCP). The returned settings point at it.
    With ``actuator.emulator: firmware`` the serial controller is the C firmware on its emulated board
    (``sorter.actuate.firmware_board``), whose valve pins drive ``device`` (a simulated valve bank).

    Raises:
        ConfigError: the firmware emulator asked for a Modbus link, or its toolchain is missing.
    """
    if actuator.emulator == "firmware":
        return _start_firmware(actuator, kind, device)
    if kind == "serial":
        from firmware_bridge.emulators.valve_controller import ValveControllerEmulator
        from firmware_bridge.pty_pair import PtyPair

        pty = PtyPair().start()
        try:
            emulator = ValveControllerEmulator(pty.device_path, device, limits).start()
        except BaseException:
            pty.close()
            raise
        serial_cfg = actuator.serial.model_copy(update={"url": pty.host_path})
        return EmulatorPeer(actuator.model_copy(update={"serial": serial_cfg}), emulator, [pty.close, emulator.stop])
    from firmware_bridge.emulators.plc import PlcEmulator

    m = actuator.modbus
    stops: list[Callable[[], None]] = []
    update: dict[str, object] = {"host": "127.0.0.1"}
    if m.transport == "rtu":
        from firmware_bridge.pty_pair import PtyPair

        pty = PtyPair().start()
        stops.append(pty.close)
        plc = PlcEmulator(device, limits, transport="rtu", serial_url=pty.device_path, baudrate=m.baudrate, scan_s=0.001)
        update["serial_url"] = pty.host_path
    else:
        plc = PlcEmulator(device, limits, transport="tcp", host="127.0.0.1", port=0, scan_s=0.001)
    try:
        plc.start()
    except BaseException:
        for stop in reversed(stops):
            stop()
        raise
    stops.append(plc.stop)
    update["port"] = plc.port
    return EmulatorPeer(actuator.model_copy(update={"modbus": m.model_copy(update=update)}), plc, stops)


def _start_firmware(actuator: ActuatorConfig, kind: str, device: DeviceModel) -> EmulatorPeer:
    from sorter.actuate.firmware_board import FirmwareBoard, PinDevice

    if kind != "serial":
        raise ConfigError(
            f"actuator.emulator = 'firmware' emulates a serial valve controller, not a {kind} one; "
            "use actuator.type: serial, or actuator.emulator: true for the PLC emulator"
        )
    if not all(hasattr(device, k) for k in ("valve_pulse", "follow_pins", "t0_ns")):
        raise ConfigError("actuator.emulator = 'firmware' needs the simulated line's valve bank (camera.type: sim)")
    board = FirmwareBoard(cast(PinDevice, device)).start()
    serial_cfg = actuator.serial.model_copy(update={"url": board.url})
    return EmulatorPeer(actuator.model_copy(update={"serial": serial_cfg}), board, [board.stop])


def link_where(actuator: ActuatorConfig, kind: str, emulated: bool = False) -> tuple[str, str]:
    """The controller in words (``valve controller on /dev/ttyACM0``) and what to check when it does not answer."""
    tag = " (emulated)" if emulated else ""
    if kind == "serial":
        url = actuator.serial.url
        fix = (
            ("the emulated firmware board did not answer; see firmware/README.md" if actuator.emulator == "firmware"
             else "the emulator did not start; check that socat is installed")
            if emulated
            else f"check the cable and that actuator.serial.url = {url!r} is the controller's port"
        )
        return f"valve controller on {url}{tag}", fix
    m = actuator.modbus
    where = f"PLC at {m.host}:{m.port}" if m.transport == "tcp" else f"PLC (RTU) on {m.serial_url}"
    fix = (
        "check actuator.modbus (host, port, unit_id), the network, "
        "and that the PLC runs the register map of firmware_bridge/PROTOCOL.md"
    )
    return where + tag, fix


def build_link(
    actuator: ActuatorConfig,
    kind: str,
    arm: bool,
    emulated: bool = False,
    max_counts_per_s: float | None = None,
    session_id: int | None = None,
) -> tuple[SerialLink | ModbusLink, str, str]:
    """The (not yet started) link of a ``kind`` controller with every configured setting; where it is; the fix.

    ``max_counts_per_s`` (``link_max_counts_per_s``) bounds the count's speed; None keeps the link's default.
    ``session_id``: the session the link arms the controller with (a restarted link process keeps the line's, so
    the controller keeps its record of the command ids); None: a random one.
    """
    where, fix = link_where(actuator, kind, emulated)
    if kind == "serial":
        s = actuator.serial
        session = SessionConfig(ack_timeout_ns=round(s.ack_timeout_ms * 1e6), heartbeat_ns=round(s.heartbeat_ms * 1e6))
        if max_counts_per_s is not None:
            session = dataclasses.replace(session, max_counts_per_s=max_counts_per_s)
        return SerialLink(s.url, s.baudrate, session, session_id=session_id, arm=arm), where, fix
    m = actuator.modbus
    timing = ModbusLinkConfig(heartbeat_ms=m.heartbeat_ms)
    if max_counts_per_s is not None:
        timing = dataclasses.replace(timing, max_counts_per_s=max_counts_per_s)
    link = ModbusLink(
        m.transport, m.host, m.port, m.serial_url, m.baudrate, m.unit_id, m.timeout_ms, timing, session_id=session_id, arm=arm
    )
    return link, where, fix
