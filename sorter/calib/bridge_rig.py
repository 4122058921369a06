"""Test pulses through a real controller link (``firmware_bridge``): FIRE commands out, FIRED reports back.

:class:`BridgePulseRig` sends each test pulse as a position-stamped FIRE
command over a ``firmware_bridge`` link (serial protocol or Modbus), waits for
the controller's FIRED report (the encoder count at which it switched the
valve) and asks a :class:`sorter.calib.timing_rig.HitObserver` where the air
hit. The ``sorter calibrate timing --link`` command builds one over the line's
controller link (``sorter.actuate.links``), or over an emulator driving the
simulator's valve bank (``sorter.sim.calib_views.valve_bench``), whose true
latency and jitter the calibration must find.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sorter.calib.timing import PulseObservation
from sorter.calib.timing_rig import HitObserver
from sorter.errors import CalibrationError, DeviceNotConnectedError

if TYPE_CHECKING:
    from firmware_bridge.link import ControllerLink, LinkEvent

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
