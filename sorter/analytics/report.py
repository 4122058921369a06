"""What went by: composition by class over time, throughput, ejections, recovery estimate (pure; events in, tables out).

There is no ground truth on a real line, so recovery is *estimated* from the
line's own records: of the objects decided as targets, the share whose command
the controller reported as executed. Purity cannot be measured without a
person checking the bale; the report gives the ejected objects' mean class
confidence as its proxy and says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sorter.analytics.events import TrackEvent

TARGET_DECISIONS = ("eject", "pick", "late", "skip")
EJECTED = ("eject", "pick")


@dataclass
class Bucket:
    """One time bucket of the report."""

    t_start_ns: int
    objects: Counter[str] = field(default_factory=Counter)
    ejected: Counter[str] = field(default_factory=Counter)
    executed: int = 0
    targets: int = 0
    confidence_sum: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.objects.values())


@dataclass(frozen=True)
class Report:
    """Buckets plus totals over the whole period."""

    t_start_ns: int
    t_end_ns: int
    bucket_s: float
    classes: tuple[str, ...]
    buckets: tuple[Bucket, ...]
    objects: dict[str, int]
    ejected: dict[str, int]
    targets: int
    executed: int
    recovery_estimate: float | None
    ejected_mean_confidence: float | None

    @property
    def throughput_per_min(self) -> float:
        minutes = max(1e-9, (self.t_end_ns - self.t_start_ns) / 60e9)
        return sum(self.objects.values()) / minutes


def build_report(events: Sequence[TrackEvent], t_start_ns: int, t_end_ns: int, bucket_s: float) -> Report:
    """Aggregate events with ``t_start_ns <= t_wall_ns < t_end_ns`` into buckets of ``bucket_s`` seconds."""
    if bucket_s <= 0:
        raise ValueError("bucket_s must be > 0")
    if t_end_ns <= t_start_ns:
        raise ValueError("the report period is empty: --until must be after --since")
    step = round(bucket_s * 1e9)
    n = max(1, -(-(t_end_ns - t_start_ns) // step))
    buckets = [Bucket(t_start_ns + k * step) for k in range(n)]
    for e in events:
        if not t_start_ns <= e.t_wall_ns < t_end_ns:
            continue
        b = buckets[(e.t_wall_ns - t_start_ns) // step]
        b.objects[e.class_name] += 1
        if e.decision in TARGET_DECISIONS:
            b.targets += 1
        if e.decision in EJECTED:
            b.ejected[e.class_name] += 1
            b.confidence_sum += e.confidence
            b.executed += e.outcome == "executed"
    objects: Counter[str] = Counter()
    ejected: Counter[str] = Counter()
    for b in buckets:
        objects.update(b.objects)
        ejected.update(b.ejected)
    targets = sum(b.targets for b in buckets)
    executed = sum(b.executed for b in buckets)
    n_ejected = sum(ejected.values())
    return Report(
        t_start_ns=t_start_ns,
        t_end_ns=t_end_ns,
        bucket_s=bucket_s,
        classes=tuple(sorted(objects)),
        buckets=tuple(buckets),
        objects=dict(sorted(objects.items())),
        ejected=dict(sorted(ejected.items())),
        targets=targets,
        executed=executed,
        recovery_estimate=executed / targets if targets else None,
        ejected_mean_confidence=sum(b.confidence_sum for b in buckets) / n_ejected if n_ejected else None,
    )
