"""Per-valve latency and lateral offset from test pulses fired at marked targets (pure maths).

A test pulse is commanded to open a valve when the odometer reads
``s_command_mm``: the moment a target mark on the belt reaches the ejection
line, with no lead. The controller reports (FIRED) the odometer ``s_fired_mm``
at which it actually switched the valve; the air then needs the valve latency
``L`` to arrive, while the belt moves on at speed ``v``. The camera (or a
simulated observation) sees where the air hit, relative to the target, in
belt-fixed millimetres: ``hit_dy_mm`` (positive downstream). So the air
arrived at odometer ``s_air = s_command - hit_dy`` and

    s_air - s_fired = v * L + e

where ``e`` is an error in the ejection-line position, common to all valves.
At one belt speed ``e`` and ``L`` cannot be told apart and ``e`` is taken as 0;
pulses at two or more speeds separate them (least squares over all pulses).
The lateral offset of a valve is the mean across-belt distance from its
nominal lane centre to the hit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sorter.errors import CalibrationError


@dataclass(frozen=True)
class PulseObservation:
    """One observed test pulse.

    Attributes:
        valve: valve index (0-based).
        s_command_mm: odometer at which the valve was commanded to open (target on the ejection line).
        s_fired_mm: odometer at which the controller switched the valve (FIRED report);
            equal to ``s_command_mm`` when the controller does not report.
        speed_mm_s: belt speed during the pulse.
        hit_dy_mm: along-belt position of the air hit relative to the target, belt-fixed, + downstream.
        hit_x_mm: across-belt centre of the air hit.
    """

    valve: int
    s_command_mm: float
    s_fired_mm: float
    speed_mm_s: float
    hit_dy_mm: float
    hit_x_mm: float


@dataclass(frozen=True)
class ValveGeometry:
    """Nominal valve lanes: valve ``i`` blows at ``x_first_mm + (i + 0.5) * pitch_mm``."""

    count: int
    pitch_mm: float
    x_first_mm: float = 0.0

    def centre_x_mm(self, valve: int) -> float:
        return self.x_first_mm + (valve + 0.5) * self.pitch_mm


@dataclass(frozen=True)
class TimingThresholds:
    """Pass/fail limits of a timing calibration.

    Attributes:
        min_pulses: fewest observed pulses per valve.
        max_jitter_ms: largest per-valve standard deviation of the latency.
        max_lateral_offset_fraction: largest lateral offset as a share of the valve pitch
            (beyond half a pitch the air lands in the neighbour's lane).
        min_speed_ratio: fastest/slowest pulse speed needed to fit the ejection-line error.
    """

    min_pulses: int = 3
    max_jitter_ms: float = 1.0
    max_lateral_offset_fraction: float = 0.4
    min_speed_ratio: float = 1.2


@dataclass(frozen=True)
class ValveTiming:
    """Fitted timing of one valve.

    Attributes:
        valve: valve index.
        latency_ms: switch-to-air delay.
        jitter_ms: standard deviation of the delay over the pulses.
        lateral_offset_mm: hit centre minus nominal lane centre, across the belt.
        controller_lag_ms: mean (s_fired - s_command) / v: how late the controller switched.
        n_pulses: pulses used.
    """

    valve: int
    latency_ms: float
    jitter_ms: float
    lateral_offset_mm: float
    controller_lag_ms: float
    n_pulses: int


@dataclass(frozen=True)
class TimingFit:
    """Result of a timing calibration.

    Attributes:
        valves: per-valve timing, by valve index.
        mean_latency_ms: mean over valves (the value for ``airjet.valves.latency_ms``).
        y_eject_offset_mm: fitted error of the ejection-line position (``None`` at one speed: assumed 0).
        passed: thresholds met.
        problems: what failed and what to do.
        warnings: noteworthy, not failing.
    """

    valves: tuple[ValveTiming, ...]
    mean_latency_ms: float
    y_eject_offset_mm: float | None
    passed: bool
    problems: tuple[str, ...]
    warnings: tuple[str, ...]


def fit_timing(
    observations: Sequence[PulseObservation],
    geometry: ValveGeometry,
    thresholds: TimingThresholds | None = None,
    missed: dict[int, int] | None = None,
) -> TimingFit:
    """Fit per-valve latency, jitter and lateral offset.

    Args:
        observations: observed pulses (any valves, any order).
        geometry: nominal valve lanes.
        thresholds: pass/fail limits.
        missed: pulses per valve whose air was not seen at all (reported as problems).

    Raises:
        CalibrationError: no observations, or a belt standing still.
    """
    th = thresholds or TimingThresholds()
    obs = list(observations)
    if not obs:
        raise CalibrationError("no test pulse was observed; check the valves fire (air supply on, controller armed) and retry")
    v = np.array([o.speed_mm_s for o in obs], dtype=np.float64)
    if np.any(v <= 1.0):
        raise CalibrationError(
            "the belt was standing (speed <= 1 mm/s) during a test pulse: latency is measured from belt travel; "
            "run the belt at working speed and repeat"
        )
    valve = np.array([o.valve for o in obs], dtype=np.int64)
    bad = sorted({int(i) for i in valve if not 0 <= i < geometry.count})
    if bad:
        raise CalibrationError(f"valve index(es) {bad} outside 0..{geometry.count - 1}; check airjet.valves.count")
    s_cmd = np.array([o.s_command_mm for o in obs])
    s_fired = np.array([o.s_fired_mm for o in obs])
    s_air = s_cmd - np.array([o.hit_dy_mm for o in obs])
    d = s_air - s_fired
    hit_x = np.array([o.hit_x_mm for o in obs])
    valves = sorted(set(valve.tolist()))
    col = {vi: k for k, vi in enumerate(valves)}

    separate = float(v.max() / v.min()) >= th.min_speed_ratio
    if separate:
        a = np.zeros((len(obs), len(valves) + 1))
        a[np.arange(len(obs)), [col[int(i)] for i in valve]] = v
        a[:, -1] = 1.0
        sol, *_ = np.linalg.lstsq(a, d, rcond=None)
        lat_s = sol[:-1]
        e_mm: float | None = float(sol[-1])
    else:
        lat_s = np.array([float(np.mean(d[valve == vi] / v[valve == vi])) for vi in valves])
        e_mm = None
    e0 = e_mm or 0.0

    out = []
    problems: list[str] = []
    warnings: list[str] = []
    for vi in valves:
        sel = valve == vi
        n = int(sel.sum())
        lat_each = (d[sel] - e0) / v[sel]
        jitter = float(np.std(lat_each, ddof=1)) * 1e3 if n > 1 else float("nan")
        lateral = float(np.mean(hit_x[sel])) - geometry.centre_x_mm(vi)
        lag = float(np.mean((s_fired[sel] - s_cmd[sel]) / v[sel])) * 1e3
        out.append(ValveTiming(vi, float(lat_s[col[vi]]) * 1e3, jitter, lateral, lag, n))
        if n < th.min_pulses:
            problems.append(f"valve {vi}: only {n} pulse(s) observed (need {th.min_pulses}); fire more test pulses")
        if n > 1 and jitter > th.max_jitter_ms:
            problems.append(
                f"valve {vi}: latency varies by {jitter:.2f} ms (limit {th.max_jitter_ms:g}); check air pressure and the valve"
            )
        if abs(lateral) > th.max_lateral_offset_fraction * geometry.pitch_mm:
            problems.append(
                f"valve {vi}: air lands {lateral:+.1f} mm across the belt from its lane (pitch {geometry.pitch_mm:g} mm); "
                "check the nozzle is straight and airjet.valves.x_first_mm"
            )
    for vi, n_missed in sorted((missed or {}).items()):
        if n_missed:
            problems.append(f"valve {vi}: no air seen for {n_missed} pulse(s): check the valve, its hose and its wiring")
    if e_mm is None:
        warnings.append(
            "all pulses ran at one belt speed, so latency and an error in airjet.y_eject_mm cannot be separated; "
            "the ejection line is assumed exact (repeat at a second speed to check it)"
        )
    elif abs(e_mm) > 5.0:
        warnings.append(f"the ejection line appears {e_mm:+.1f} mm off airjet.y_eject_mm; re-measure it")
    lat_ms = np.array([t.latency_ms for t in out])
    if len(out) > 1 and float(lat_ms.max() - lat_ms.min()) > 2.0:
        warnings.append(
            f"valve latencies range {lat_ms.min():.2f}..{lat_ms.max():.2f} ms; "
            "per-valve compensation from this file is recommended"
        )
    return TimingFit(
        valves=tuple(out),
        mean_latency_ms=float(lat_ms.mean()),
        y_eject_offset_mm=e_mm,
        passed=not problems,
        problems=tuple(problems),
        warnings=tuple(warnings),
    )


def timing_fit_to_dict(fit: TimingFit, geometry: ValveGeometry, observations: Sequence[PulseObservation]) -> dict[str, Any]:
    """The YAML section of a timing calibration, with every observation."""

    def num(x: float) -> float | None:
        return None if math.isnan(x) else float(x)

    return {
        "mean_latency_ms": fit.mean_latency_ms,
        "y_eject_offset_mm": fit.y_eject_offset_mm,
        "geometry": {"count": geometry.count, "pitch_mm": geometry.pitch_mm, "x_first_mm": geometry.x_first_mm},
        "valves": [
            {
                "valve": t.valve,
                "latency_ms": t.latency_ms,
                "jitter_ms": num(t.jitter_ms),
                "lateral_offset_mm": t.lateral_offset_mm,
                "controller_lag_ms": t.controller_lag_ms,
                "pulses": t.n_pulses,
            }
            for t in fit.valves
        ],
        "passed": fit.passed,
        "problems": list(fit.problems),
        "warnings": list(fit.warnings),
        "observations": [
            {
                "valve": o.valve,
                "s_command_mm": o.s_command_mm,
                "s_fired_mm": o.s_fired_mm,
                "speed_mm_s": o.speed_mm_s,
                "hit_dy_mm": o.hit_dy_mm,
                "hit_x_mm": o.hit_x_mm,
            }
            for o in observations
        ],
    }
