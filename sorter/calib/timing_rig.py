"""Test-pulse rigs: who fires the valves and who sees where the air hit.

A :class:`PulseRig` fires one test pulse at a target and returns a
:class:`sorter.calib.timing.PulseObservation`. Rigs here:

* :class:`SimPulseRig`: controller, belt and air all simulated (a controller that
  switches on an encoder compare match, valves with true latency, jitter and
  lateral offsets, a camera that sees the hit with some noise).
* ``sorter.calib.bridge_rig.BridgePulseRig``: real bytes to a controller (or its
  emulator) through ``firmware_bridge``; the controller's FIRED report gives
  the switching position and a :class:`HitObserver` says where the air hit.

:func:`run_test_pulses` drives any rig through a list of valves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sorter.calib.timing import PulseObservation, ValveGeometry

log = logging.getLogger(__name__)


class BeltOdometer(Protocol):
    """True belt motion (``sorter.sim.world.SimWorld`` and ``sorter.sim.marker_sheet.BeltMotion`` fit)."""

    def odometer_mm(self, t_ns: int) -> float: ...

    def speed_mm_s(self, t_ns: int) -> float: ...


class HitObserver(Protocol):
    """Sees where the air of a pulse hit the belt."""

    def observe(
        self, command_id: int, valve: int, s_command_mm: float, s_fired_mm: float, speed_mm_s: float
    ) -> tuple[float, float] | None:
        """``(hit_dy_mm, hit_x_mm)`` relative to the target (belt-fixed, + downstream), or ``None`` if no air was seen."""
        ...


class PulseRig(Protocol):
    """Fires test pulses and reports what was observed."""

    def fire(self, valve: int) -> PulseObservation | None:
        """Fire one pulse of ``valve`` at the next target; ``None`` when no air was seen."""
        ...

    def close(self) -> None:
        """Release devices."""
        ...


@dataclass(frozen=True)
class ValveTruth:
    """What the simulated valves really do.

    Attributes:
        latency_ms: switch-to-air delay, one value for all valves or one per valve.
        jitter_ms: standard deviation of the delay from pulse to pulse.
        lateral_offset_mm: where the air lands across the belt relative to the lane centre (per valve or one value).
        dead_valves: valves that never blow.
        observation_sigma_mm: noise of the camera's hit measurement, each axis.
    """

    latency_ms: float | tuple[float, ...] = 3.0
    jitter_ms: float = 0.15
    lateral_offset_mm: float | tuple[float, ...] = 0.0
    dead_valves: frozenset[int] = field(default_factory=frozenset)
    observation_sigma_mm: float = 0.5

    def latency_of(self, valve: int) -> float:
        return self.latency_ms if isinstance(self.latency_ms, float | int) else float(self.latency_ms[valve])

    def offset_of(self, valve: int) -> float:
        o = self.lateral_offset_mm
        return float(o) if isinstance(o, float | int) else float(o[valve])


class SimHitObserver:
    """A simulated camera watching simulated air: the hit follows the valve's true latency.

    Args:
        truth: valve behaviour.
        geometry: nominal lanes.
        seed: random seed of jitter and measurement noise.
    """

    def __init__(self, truth: ValveTruth, geometry: ValveGeometry, seed: int = 0) -> None:
        self.truth = truth
        self.geometry = geometry
        self._rng = np.random.default_rng(seed)

    def observe(
        self, command_id: int, valve: int, s_command_mm: float, s_fired_mm: float, speed_mm_s: float
    ) -> tuple[float, float] | None:
        del command_id  # the truth is per valve
        if valve in self.truth.dead_valves:
            return None
        t = self.truth
        lat_s = (t.latency_of(valve) + float(self._rng.normal(0.0, t.jitter_ms))) * 1e-3
        s_air = s_fired_mm + speed_mm_s * lat_s
        dy = s_command_mm - s_air + float(self._rng.normal(0.0, t.observation_sigma_mm))
        x = self.geometry.centre_x_mm(valve) + t.offset_of(valve) + float(self._rng.normal(0.0, t.observation_sigma_mm))
        return dy, x


def t_ns_at(belt: BeltOdometer, s_mm: float, t_lo_ns: int) -> int:
    """First time at or after ``t_lo_ns`` at which the odometer reaches ``s_mm`` (bisection; the odometer is monotonic)."""
    lo = t_lo_ns
    hi = lo + 1_000_000
    while belt.odometer_mm(hi) < s_mm:
        hi = lo + 2 * (hi - lo)
        if hi - lo > 10**15:
            raise RuntimeError("the belt does not reach the requested position; is it moving?")
    while hi - lo > 1000:
        mid = (lo + hi) // 2
        if belt.odometer_mm(mid) < s_mm:
            lo = mid
        else:
            hi = mid
    return hi


class SimPulseRig:
    """Everything simulated: an encoder-compare controller, the belt and the air.

    The controller switches a valve at the first encoder count at or after the
    commanded position (as a hardware compare does), so ``s_fired`` lags the
    command by up to one count; the belt speed at that moment sets how far the
    belt travels during the valve latency.

    Args:
        belt: true belt motion.
        counts_per_mm: encoder resolution of the simulated controller.
        observer: where the air is seen to hit.
        spacing_mm: belt travel between successive test targets.
    """

    def __init__(self, belt: BeltOdometer, counts_per_mm: float, observer: HitObserver, spacing_mm: float = 250.0) -> None:
        self.belt = belt
        self.counts_per_mm = counts_per_mm
        self.observer = observer
        self.spacing_mm = spacing_mm
        self._t_ns = 0
        self._next_id = 1

    def fire(self, valve: int) -> PulseObservation | None:
        s_now = self.belt.odometer_mm(self._t_ns)
        s_cmd = s_now + self.spacing_mm
        s_fired = math.ceil(s_cmd * self.counts_per_mm) / self.counts_per_mm
        t_fire = t_ns_at(self.belt, s_fired, self._t_ns)
        v = self.belt.speed_mm_s(t_fire)
        self._t_ns = t_fire
        hit = self.observer.observe(self._next_id, valve, s_cmd, s_fired, v)
        self._next_id += 1
        if hit is None:
            return None
        return PulseObservation(valve, s_cmd, s_fired, v, hit[0], hit[1])

    def close(self) -> None:
        return None


def run_test_pulses(
    rig: PulseRig,
    valves: Sequence[int],
    repeats: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[PulseObservation], dict[int, int]]:
    """Fire ``repeats`` pulses per valve, interleaved (valve 0, 1, ..., 0, 1, ...) so slow drifts spread evenly.

    Returns:
        ``(observations, missed)``: observed pulses, and per valve the count of pulses with no air seen.
    """
    obs: list[PulseObservation] = []
    missed: dict[int, int] = {v: 0 for v in valves}
    total = len(valves) * repeats
    done = 0
    for _ in range(repeats):
        for v in valves:
            o = rig.fire(v)
            if o is None:
                missed[v] += 1
            else:
                obs.append(o)
            done += 1
            if progress:
                progress(done, total)
    return obs, missed
