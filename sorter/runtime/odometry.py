"""Belt odometer and speed estimate from stamped frames (pure)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sorter.actuate.base import EncoderReading


class OdometerEstimator:
    """Tracks the belt odometer from ``(t_capture_ns, s_capture_mm)`` samples.

    The speed is the slope over a sliding window of ``window_ns`` (at least two
    samples), robust to encoder quantisation. ``s_at(t_ns)`` extrapolates the
    odometer to a later time with that speed; planning uses it for "now".
    """

    def __init__(self, window_ns: int, nominal_speed_mm_s: float) -> None:
        self._window_ns = window_ns
        self._samples: deque[tuple[int, float]] = deque()
        self._speed_mm_s = nominal_speed_mm_s

    def add(self, t_ns: int, s_mm: float) -> None:
        """Add a sample; samples must arrive in time order."""
        if self._samples and t_ns <= self._samples[-1][0]:
            return
        self._samples.append((t_ns, s_mm))
        while len(self._samples) > 2 and t_ns - self._samples[0][0] > self._window_ns:
            self._samples.popleft()
        if len(self._samples) >= 2:
            t0, s0 = self._samples[0]
            dt_ns = t_ns - t0
            if dt_ns > 0:
                self._speed_mm_s = (s_mm - s0) * 1e9 / dt_ns

    @property
    def speed_mm_s(self) -> float:
        """Current belt speed estimate."""
        return self._speed_mm_s

    def s_at(self, t_ns: int) -> float:
        """Odometer extrapolated to ``t_ns`` from the latest sample."""
        if not self._samples:
            return 0.0
        t_last, s_last = self._samples[-1]
        return s_last + self._speed_mm_s * (t_ns - t_last) / 1e9


def nominal_odometer(t0_ns: int, speed_mm_s: float) -> Callable[[int], float]:
    """``s(t) = (t - t0) * speed``: the belt assumed to run at its nominal speed (no encoder reading)."""
    return lambda t_ns: (t_ns - t0_ns) * speed_mm_s / 1e9


def encoder_odometer(reading: EncoderReading, counts_per_mm: float, fallback: Callable[[int], float]) -> Callable[[int], float]:
    """``s(t)`` in mm from the controller's encoder (the count commands are written in), ``fallback`` before any reading.

    With it a real camera's ``s_capture_mm`` is on the same scale as the positions the controller
    fires at, whatever the belt's real speed does: a slowing belt no longer shifts the shots.
    """

    def s_mm(t_ns: int) -> float:
        count = reading.count_at(t_ns)
        return fallback(t_ns) if count is None else count / counts_per_mm

    return s_mm
