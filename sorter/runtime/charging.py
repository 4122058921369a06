"""What a stage's processing costs the clock: the time measured on this machine, or the time a profile models.

Live runs and ``--charge wall`` book the measured time (the clock runs on its
own). Deterministic ``--fast`` runs book a time drawn from the latency profile
and move the simulated clock by exactly that, keeping the measured time apart
(``latency_measured_ms`` of the summary, a wall-clock figure).
"""

from __future__ import annotations

from typing import Protocol

from sorter.clock import ModelledClock
from sorter.runtime.latency_profile import StageSampler
from sorter.runtime.stats import LatencyRecorder


class StageCharge(Protocol):
    """Turns a stage's measured duration into the duration the line books (and the clock sees)."""

    def charge(self, stage: str, measured_ns: int) -> int:
        """Book ``stage``; return the duration to record as its latency (ns)."""
        ...


class MeasuredCharge:
    """The machine's own time: what was measured is what is booked."""

    def charge(self, stage: str, measured_ns: int) -> int:
        del stage
        return measured_ns


class ModelledCharge:
    """Modelled time: each stage moves the simulated clock by a draw from the profile.

    Args:
        sampler: the profile's seeded sampler.
        clock: the simulated clock to move.
        measured: where the machine's own durations go (a wall-clock record, not used for decisions).
    """

    def __init__(self, sampler: StageSampler, clock: ModelledClock, measured: LatencyRecorder) -> None:
        self.sampler = sampler
        self.clock = clock
        self.measured = measured

    def charge(self, stage: str, measured_ns: int) -> int:
        self.measured.add(stage, measured_ns)
        dt_ns = self.sampler.sample_ns(stage)
        self.clock.advance_ns(dt_ns)
        return dt_ns
