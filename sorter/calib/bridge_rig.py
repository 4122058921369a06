"""Test pulses through a real controller link (``firmware_bridge``): FIRE commands out, FIRED reports back.

:class:`BridgePulseRig` sends each test pulse as a position-stamped FIRE
command over a ``firmware_bridge`` link (serial protocol or Modbus), waits for
the controller's FIRED report (the encoder count at which it switched the
valve) and asks a :class:`sorter.calib.timing_rig.HitObserver` where the air
hit. :func:`open_bridge_rig` builds one from the config: either the line's real
controller, or (``emulator=True``) the serial valve-controller emulator on a
``socat`` pseudo-terminal pair driving the simulator's valve bank, whose true
latency and jitter the calibration must find.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sorter.calib.timing import PulseObservation
from sorter.calib.timing_rig import HitObserver
from sorter.errors import CalibrationError, DeviceNotConnectedError

if TYPE_CHECKING:
    from firmware_bridge.link import ControllerLink, LinkEvent
    from sorter.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeltReadout:
    """How the rig learns where the belt is and how fast it goes.

    Attributes:
        count_now: the controller's encoder count now (estimated on a real line).
        speed_mm_s: belt speed now.
        advance_to_count: in simulation, move the simulated belt until the encoder passes a count
            (``None`` on a real line: time passes by itself).
    """

    count_now: Callable[[], int]
    speed_mm_s: Callable[[], float]
    advance_to_count: Callable[[int], None] | None = None


class BridgePulseRig:
    """Fires test pulses through a controller link and reads the FIRED reports.

    Args:
        link: a started, ready ``firmware_bridge`` link.
        counts_per_mm: encoder resolution.
        observer: where the air hit.
        belt: encoder and speed readout (and the simulated belt's driver).
        lead_mm: how far ahead of the belt each pulse is scheduled (covers the link's delay).
        pulse_mm: belt travel during which the valve stays open.
        timeout_s: longest wait for an answer or a report.
        on_close: called by :meth:`close` (stops emulators).
    """

    def __init__(
        self,
        link: ControllerLink,
        counts_per_mm: float,
        observer: HitObserver,
        belt: BeltReadout,
        lead_mm: float = 250.0,
        pulse_mm: float = 15.0,
        timeout_s: float = 3.0,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.link = link
        self.cpm = counts_per_mm
        self.observer = observer
        self.belt = belt
        self.lead_counts = max(1, round(lead_mm * counts_per_mm))
        self.pulse_counts = max(1, round(pulse_mm * counts_per_mm))
        self.timeout_s = timeout_s
        self._on_close = on_close
        self._ids = itertools.count(1)
        self._pending: dict[int, LinkEvent] = {}

    def _wait_for(self, command_id: int, statuses: tuple[str, ...]) -> LinkEvent:
        deadline = time.monotonic() + self.timeout_s
        while True:
            for event in self.link.poll_events():
                self._pending[event.command_id] = event
            ev = self._pending.get(command_id)
            if ev is not None and ev.status in statuses:
                del self._pending[command_id]
                return ev
            if ev is not None and ev.status in ("late", "rejected", "cancelled"):
                raise CalibrationError(
                    f"the controller refused test pulse {command_id} ({ev.status}: {ev.detail or 'no detail'}); "
                    "check it is armed and the belt runs, then retry"
                )
            if time.monotonic() > deadline:
                raise DeviceNotConnectedError(
                    f"no {'/'.join(statuses)} report for test pulse {command_id} within {self.timeout_s:g} s; "
                    "check the controller link and that the belt is moving"
                )
            time.sleep(0.002)

    def fire(self, valve: int) -> PulseObservation | None:
        from firmware_bridge.messages import Fire

        cid = next(self._ids)
        open_count = self.belt.count_now() + self.lead_counts
        close_count = open_count + self.pulse_counts
        speed_before = self.belt.speed_mm_s()
        self.link.submit(Fire(cid, valve, valve, open_count, close_count))
        if self.belt.advance_to_count is not None:
            self._wait_for(cid, ("accepted", "executed"))
            # let the simulated belt run past the pulse, its valve latency and a margin
            self.belt.advance_to_count(close_count + self.lead_counts)
        done = self._wait_for(cid, ("executed",))
        if done.open_count is None:
            raise CalibrationError(f"the FIRED report of test pulse {cid} carries no position; update the controller firmware")
        speed = 0.5 * (speed_before + self.belt.speed_mm_s())  # around the pulse
        s_cmd = open_count / self.cpm
        s_fired = done.open_count / self.cpm
        hit = self.observer.observe(cid, valve, s_cmd, s_fired, speed)
        if hit is None:
            return None
        return PulseObservation(valve, s_cmd, s_fired, speed, hit[0], hit[1])

    def close(self) -> None:
        try:
            self.link.close()
        finally:
            if self._on_close is not None:
                self._on_close()


class BankHitObserver:
    """Where the simulator's valve bank really blew (its executed pulse records), seen by a camera with some noise.

    Args:
        bank: ``sorter.sim.ejector.ValveBankModel``.
        pitch_mm: valve pitch.
        x_first_mm: left edge of valve 0's air.
        sigma_mm: camera measurement noise, each axis.
        seed: noise seed.
    """

    def __init__(self, bank: Any, pitch_mm: float, x_first_mm: float, sigma_mm: float = 0.5, seed: int = 0) -> None:
        import numpy as np

        self.bank = bank
        self.pitch_mm = pitch_mm
        self.x_first_mm = x_first_mm
        self.sigma_mm = sigma_mm
        self._rng = np.random.default_rng(seed)

    def observe(
        self, command_id: int, valve: int, s_command_mm: float, s_fired_mm: float, speed_mm_s: float
    ) -> tuple[float, float] | None:
        del s_fired_mm, speed_mm_s
        rec = next((r for r in reversed(self.bank.executed) if r.command_id == command_id), None)
        if rec is None:
            return None
        dy = s_command_mm - float(rec.s_open_actual_mm) + float(self._rng.normal(0.0, self.sigma_mm))
        x = self.x_first_mm + (valve + 0.5) * self.pitch_mm + float(self._rng.normal(0.0, self.sigma_mm))
        return dy, x


def open_bridge_rig(cfg: Config, link_type: str, emulator: bool) -> BridgePulseRig:
    """A rig on the config's controller link (``serial`` or ``modbus``), or on its emulator over the simulated line.

    With ``emulator`` the link's peer is ``firmware_bridge``'s valve-controller
    emulator on a ``socat`` pseudo-terminal pair (serial) or its PLC emulator on
    loopback TCP (Modbus), whose device is the simulator's valve bank with the
    true latency ``sim.valve_latency_ms`` and jitter ``sim.valve_jitter_ms``.

    Raises:
        CalibrationError: a real line without a way to observe the air hits.
        DeviceNotConnectedError: the controller (or emulator) did not answer.
    """
    if not emulator:
        raise CalibrationError(
            "observing the air hits on a real line needs the camera procedure for blown targets, which this version "
            f"does not have; run 'sorter calibrate timing --link {link_type} --emulator' against the emulator, or --sim"
        )
    from sorter.actuate.bridge import _sim_limits
    from sorter.actuate.sim_device import SimDevice
    from sorter.calib.sources import sim_camera
    from sorter.sim.world import SimWorld

    cpm = cfg.belt.encoder_counts_per_mm
    v = cfg.airjet.valves
    world = SimWorld(
        cfg.sim.model_copy(update={"density_per_m2": 0.0}),
        belt_width_mm=cfg.belt.width_mm,
        nominal_speed_mm_s=cfg.belt.nominal_speed_mm_s,
        encoder_counts_per_mm=cpm,
        camera=sim_camera(cfg),
    )
    bank = world.add_valve_bank(v.count, v.pitch_mm, v.x_first_mm, cfg.airjet.y_eject_mm)
    hits = BankHitObserver(bank, v.pitch_mm, v.x_first_mm, seed=cfg.sim.seed)
    device = SimDevice(world, bank, cpm)
    stops: list[Callable[[], None]] = []

    def stop() -> None:
        for f in reversed(stops):
            f()

    link: ControllerLink
    if link_type == "serial":
        from firmware_bridge.emulators.valve_controller import ValveControllerEmulator
        from firmware_bridge.pty_pair import PtyPair
        from firmware_bridge.serial_link import SerialLink

        pty = PtyPair().start()
        stops.append(pty.close)
        emu = ValveControllerEmulator(pty.device_path, device, _sim_limits(cfg, 256)).start()
        stops.append(emu.stop)
        link = SerialLink(pty.host_path, cfg.actuator.serial.baudrate)
    else:
        from firmware_bridge.emulators.plc import PlcEmulator
        from firmware_bridge.modbus_link import ModbusLink

        plc = PlcEmulator(device, _sim_limits(cfg, 64), transport="tcp", host="127.0.0.1", port=0).start()
        stops.append(plc.stop)
        link = ModbusLink("tcp", "127.0.0.1", plc.port)
    link.start()
    if not link.wait_ready(3.0):
        link.close()
        stop()
        raise DeviceNotConnectedError(
            f"the {link_type} controller emulator did not answer within 3 s (serial needs socat installed)"
        )

    def advance_to_count(count: int) -> None:
        world.advance_to(max(world.t_ns_at_odometer(count / cpm), world.now_ns))

    belt = BeltReadout(
        count_now=lambda: world.encoder_count(world.now_ns),
        speed_mm_s=lambda: world.speed_mm_s(world.now_ns),
        advance_to_count=advance_to_count,
    )
    return BridgePulseRig(link, cpm, hits, belt, on_close=stop)
