"""True belt motion of the virtual line: speed profile, odometer and its inverse.

The true speed is a piecewise-linear base profile (the mean speed, then step
changes ramped over ``ramp_s`` so they are physical) multiplied by a slow
sinusoidal drift::

    v(t) = b(t) * (1 + a * sin(w * t + phi))

The odometer ``s(t)`` is the exact integral of ``v``, in closed form per
segment of ``b``, so it is monotonic, continuous and cheap to query at any
time. Times here are seconds of *simulated* time (0 at the start of the
world); the world converts monotonic nanoseconds.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

#: How long a speed step takes to settle (a real drive ramps, it never jumps).
DEFAULT_RAMP_S = 0.05


@dataclass(frozen=True, slots=True)
class _Segment:
    t0_s: float
    b0_mm_s: float
    slope_mm_s2: float
    s0_mm: float


class BeltProfile:
    """Speed, odometer and inverse odometer of the true belt.

    Args:
        mean_speed_mm_s: base speed before any step.
        drift_fraction: amplitude ``a`` of the multiplicative drift (0..0.5).
        drift_period_s: period of the drift.
        drift_phase_rad: phase ``phi`` of the drift (seeded by the world).
        steps: ``(t_s, speed_mm_s)`` step changes of the base speed.
        ramp_s: duration of the linear ramp of each step.

    Before ``t = 0`` the belt is extrapolated at its speed at ``t = 0`` so the
    odometer stays monotonic for any time.
    """

    def __init__(
        self,
        mean_speed_mm_s: float,
        drift_fraction: float = 0.0,
        drift_period_s: float = 23.0,
        drift_phase_rad: float = 0.0,
        steps: Sequence[tuple[float, float]] = (),
        ramp_s: float = DEFAULT_RAMP_S,
    ) -> None:
        if mean_speed_mm_s <= 0:
            raise ValueError(f"belt mean speed must be > 0 mm/s, got {mean_speed_mm_s}")
        if not 0.0 <= drift_fraction < 1.0:
            raise ValueError(f"speed drift fraction must be in [0, 1), got {drift_fraction}")
        self._a = float(drift_fraction)
        self._w = 2.0 * math.pi / drift_period_s if drift_period_s > 0 else 0.0
        self._phi = float(drift_phase_rad)
        knots: list[tuple[float, float]] = [(0.0, float(mean_speed_mm_s))]
        for t_s, speed in sorted(steps):
            if speed <= 0:
                raise ValueError(f"speed step to {speed} mm/s at t = {t_s} s: speed must be > 0")
            t_start = max(float(t_s), knots[-1][0])
            current = knots[-1][1]
            if t_start > knots[-1][0]:
                knots.append((t_start, current))
            knots.append((t_start + max(ramp_s, 1e-6), float(speed)))
        self._segments: list[_Segment] = []
        s = 0.0
        for i, (t0, b0) in enumerate(knots):
            if i + 1 < len(knots):
                t1, b1 = knots[i + 1]
                slope = (b1 - b0) / (t1 - t0)
            else:
                slope = 0.0
            seg = _Segment(t0, b0, slope, s)
            self._segments.append(seg)
            if i + 1 < len(knots):
                s = s + self._integral(seg, knots[i + 1][0])
        self._t_knots = [seg.t0_s for seg in self._segments]
        self._s_knots = [seg.s0_mm for seg in self._segments]
        self._v0 = self.speed_mm_s(0.0)
        self._b_min = min(b for _t, b in knots)

    # ------------------------------------------------------------------ closed forms
    def _integral(self, seg: _Segment, t_s: float) -> float:
        """Travel from ``seg.t0_s`` to ``t_s`` inside one segment (mm)."""
        dt = t_s - seg.t0_s
        base = seg.b0_mm_s * dt + 0.5 * seg.slope_mm_s2 * dt * dt
        if self._a == 0.0 or self._w == 0.0:
            return base
        w = self._w
        th0 = w * seg.t0_s + self._phi
        th = w * t_s + self._phi
        cos0, cos1 = math.cos(th0), math.cos(th)
        drift = seg.b0_mm_s * (cos0 - cos1) / w + seg.slope_mm_s2 * (-dt * cos1 / w + (math.sin(th) - math.sin(th0)) / (w * w))
        return base + self._a * drift

    def _segment_at(self, t_s: float) -> _Segment:
        i = bisect.bisect_right(self._t_knots, t_s) - 1
        return self._segments[max(i, 0)]

    # ------------------------------------------------------------------ queries
    def speed_mm_s(self, t_s: float) -> float:
        """True belt speed at simulated time ``t_s`` (mm/s)."""
        if t_s < 0.0:
            return self._v0
        seg = self._segment_at(t_s)
        b = seg.b0_mm_s + seg.slope_mm_s2 * (t_s - seg.t0_s)
        return b * (1.0 + self._a * math.sin(self._w * t_s + self._phi))

    def s_mm(self, t_s: float) -> float:
        """Odometer (total belt travel, mm) at simulated time ``t_s``; 0 at ``t = 0``."""
        if t_s < 0.0:
            return self._v0 * t_s
        seg = self._segment_at(t_s)
        return seg.s0_mm + self._integral(seg, t_s)

    def t_at_s(self, s_mm: float) -> float:
        """Inverse of :meth:`s_mm`: the simulated time (s) at which the odometer reads ``s_mm``.

        Safeguarded Newton iteration inside the bracketing segment; exact to
        well below a nanosecond of belt travel.
        """
        if s_mm <= 0.0:
            return s_mm / self._v0
        i = max(bisect.bisect_right(self._s_knots, s_mm) - 1, 0)
        seg = self._segments[i]
        lo = seg.t0_s
        if i + 1 < len(self._segments):
            hi = self._segments[i + 1].t0_s
        else:
            v_min = seg.b0_mm_s * (1.0 - self._a)
            hi = lo + (s_mm - seg.s0_mm) / v_min + 1e-9
        t = lo + (s_mm - seg.s0_mm) / max(seg.b0_mm_s, 1e-9)
        t = min(max(t, lo), hi)
        for _ in range(60):
            err = seg.s0_mm + self._integral(seg, t) - s_mm
            if abs(err) < 1e-9:
                break
            if err > 0:
                hi = t
            else:
                lo = t
            v = self.speed_mm_s(t)
            t_new = t - err / v if v > 0 else 0.5 * (lo + hi)
            if not lo <= t_new <= hi:
                t_new = 0.5 * (lo + hi)
            t = t_new
        return t

    @property
    def min_speed_mm_s(self) -> float:
        """A lower bound of the true speed over all time (mm/s)."""
        return self._b_min * (1.0 - self._a)
