"""Injected time. Logic never calls ``time.time()``; it asks a Clock."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Source of monotonic nanoseconds."""

    def now_ns(self) -> int:
        """Return the current monotonic time in nanoseconds."""
        ...


class MonotonicClock:
    """The real monotonic clock of the host."""

    def now_ns(self) -> int:
        return time.monotonic_ns()


class ManualClock:
    """A clock that only moves when told to (tests, fast simulation).

    Thread-safe: the fast simulation advances it from the main thread while
    actuator threads read it.
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            return self._now_ns

    def set_ns(self, t_ns: int) -> None:
        """Move the clock to ``t_ns``; it never goes backwards."""
        with self._lock:
            if t_ns < self._now_ns:
                raise ValueError(f"ManualClock cannot go backwards ({t_ns} < {self._now_ns})")
            self._now_ns = t_ns

    def advance_ns(self, dt_ns: int) -> None:
        """Move the clock forward by ``dt_ns`` (must be >= 0)."""
        if dt_ns < 0:
            raise ValueError("ManualClock.advance_ns needs dt_ns >= 0")
        with self._lock:
            self._now_ns += dt_ns


class ChargedClock:
    """Simulated clock for ``--fast`` runs.

    Frozen between cycles; during a cycle it runs at the real rate from the
    cycle's start, so the measured processing time is charged to simulated time.
    """

    def __init__(self) -> None:
        self._base_ns = 0
        self._start_pc_ns: int | None = None
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            if self._start_pc_ns is None:
                return self._base_ns
            return self._base_ns + (time.perf_counter_ns() - self._start_pc_ns)

    def begin_cycle(self, t_ns: int) -> None:
        """Start charging real time from simulated ``t_ns`` (never moves backwards)."""
        with self._lock:
            self._base_ns = max(self._base_ns, t_ns)
            self._start_pc_ns = time.perf_counter_ns()

    def end_cycle(self) -> int:
        """Freeze the clock at the current simulated time and return it."""
        with self._lock:
            if self._start_pc_ns is not None:
                self._base_ns += time.perf_counter_ns() - self._start_pc_ns
                self._start_pc_ns = None
            return self._base_ns


class ModelledClock(ManualClock):
    """Simulated clock of deterministic ``--fast`` runs: it moves only by the modelled time charged to it.

    The loop charges each stage a time drawn from a latency profile
    (``sorter.runtime.latency_profile``); nothing the machine really spends
    (processing, rendering, load from other programs) reaches it, so a run is
    reproducible from its seed and profile.
    """

    def begin_cycle(self, t_ns: int) -> None:
        """Start a cycle at simulated ``t_ns`` (the clock never moves backwards)."""
        with self._lock:
            self._now_ns = max(self._now_ns, t_ns)

    def end_cycle(self) -> int:
        """The simulated time at the end of the cycle."""
        return self.now_ns()
