"""What went by: composition by class over time, throughput, ejections or picks, quality estimates (pure; events in).

Buckets are aligned to the clock of the report's time zone (see
:mod:`sorter.analytics.timebins`) and cover the time the line was seen running,
not the whole period asked for: a one-minute run in a 24 h report is one minute
of buckets, and its throughput is per minute of that run.

**Running time.** Objects are finished tracks, so the line is known to run from
the first to the last object. With ``n`` objects over that span the mean gap is
``span / (n - 1)``; the running time extends the span by half a gap at each end
(within the period). The throughput, ``n`` over the running time, is then
``(n - 1) / span``: the rate that a steady stream of objects gives exactly. One
object gives no rate.

There is no ground truth on a real line, so quality is *estimated* from the
line's own records (an air-jet line *ejects*, a robot *picks*; both are
"actuated" here):

Per bucket, throughput is over the bucket's share of the running time, and left
out for a bucket that ran less than half of it (the start or end of a run).

- **recovery estimate**: executed ejections / objects decided as targets (ejected, picked, late or skipped);
- **contamination share**: actuated objects whose recorded class is not a target class / actuated objects;
- **purity estimate**: each actuated object counts as target material with its class confidence, one of a
  non-target class as contamination: sum of the target-class confidences / actuated objects. Measuring purity
  needs a bale sample; with nothing actuated there is no purity, and reports say ``n/a``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo

from sorter.analytics.alerts import Alert
from sorter.analytics.events import TrackEvent
from sorter.analytics.timebins import NS_PER_S, bucket_edges_ns, check_bucket_s, nice_bucket_s

TARGET_DECISIONS = ("eject", "pick", "late", "skip")
ACTUATED = ("eject", "pick")


def line_verb(mode: str, events: Iterable[TrackEvent] = ()) -> str:
    """``picked`` for a robot line, ``ejected`` for an air-jet line: from the decisions stored, else from ``line.mode``."""
    decisions = {e.decision for e in events}
    if "pick" in decisions:
        return "picked"
    if "eject" in decisions:
        return "ejected"
    return "picked" if mode == "robot" else "ejected"


def ratio(num: float, den: float) -> float | None:
    """``num / den``, or None when ``den`` is 0 (``n/a`` in reports)."""
    return num / den if den else None


@dataclass
class Bucket:
    """One clock-aligned time bucket (or, as :attr:`Report.totals`, the whole report).

    Attributes:
        t_start_ns: start (wall-clock epoch ns, on the clock grid).
        t_end_ns: end (exclusive).
        objects: objects per class.
        actuated: ejected (or picked) objects per class.
        actuated_nontarget: ejected (picked) objects of a non-target class.
        target_decisions: objects decided as targets (ejected, picked, late or skipped).
        executed: ejections (picks) the controller reported as executed.
        target_confidence_sum: sum of the class confidences of the actuated objects of a target class.
        running_s: seconds of the bucket during which the line was seen running (see the module docstring).
    """

    t_start_ns: int
    t_end_ns: int
    objects: Counter[str] = field(default_factory=Counter)
    actuated: Counter[str] = field(default_factory=Counter)
    actuated_nontarget: int = 0
    target_decisions: int = 0
    executed: int = 0
    target_confidence_sum: float = 0.0
    running_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.objects.values())

    @property
    def n_actuated(self) -> int:
        return sum(self.actuated.values())

    @property
    def throughput_per_min(self) -> float | None:
        """Objects per minute of running time; None without running time."""
        return self.total / (self.running_s / 60.0) if self.running_s > 0 else None

    @property
    def recovery_estimate(self) -> float | None:
        return ratio(self.executed, self.target_decisions)

    @property
    def purity_estimate(self) -> float | None:
        return ratio(self.target_confidence_sum, self.n_actuated)

    @property
    def contamination_share(self) -> float | None:
        return ratio(self.actuated_nontarget, self.n_actuated)

    def add(self, e: TrackEvent, targets: frozenset[str]) -> None:
        """Count one event."""
        self.objects[e.class_name] += 1
        self.target_decisions += e.decision in TARGET_DECISIONS
        if e.decision in ACTUATED:
            self.actuated[e.class_name] += 1
            self.executed += e.outcome == "executed"
            if e.class_name in targets:
                self.target_confidence_sum += e.confidence
            else:
                self.actuated_nontarget += 1


@dataclass(frozen=True)
class Report:
    """A period of one line: its buckets, totals and alerts.

    Attributes:
        line: the line's name.
        verb: ``ejected`` (air jets) or ``picked`` (robot).
        zone: the time zone of the buckets and of every time printed; ``zone_label`` names it.
        t_start_ns, t_end_ns: the period asked for, ``[start, end)``.
        bucket_s: bucket size (s), clock-aligned.
        targets: the target classes the contamination and purity estimates use.
        classes: classes seen, sorted.
        buckets: the buckets covering the running time (none without objects).
        first_ns, last_ns: the first and last object's time (None without objects).
        running_start_ns, running_end_ns: the running time (see the module docstring).
        totals: the whole period as one bucket.
        alerts: alerts overlapping the period.
        thresholds: ``(rule, kind, threshold)`` of the alert rules in force, drawn on the charts.
    """

    line: str
    verb: str
    zone: tzinfo
    zone_label: str
    t_start_ns: int
    t_end_ns: int
    bucket_s: int
    targets: tuple[str, ...]
    classes: tuple[str, ...]
    buckets: tuple[Bucket, ...]
    first_ns: int | None
    last_ns: int | None
    running_start_ns: int | None
    running_end_ns: int | None
    totals: Bucket
    alerts: tuple[Alert, ...] = ()
    thresholds: tuple[tuple[str, str, float], ...] = ()

    @property
    def n_objects(self) -> int:
        return self.totals.total

    @property
    def running_s(self) -> float:
        return self.totals.running_s

    @property
    def throughput_per_min(self) -> float | None:
        """Objects per minute of running time (``(n - 1) / span`` inside the period); None with fewer than 2 objects."""
        return self.totals.throughput_per_min

    def bucket_throughput_per_min(self, b: Bucket) -> float | None:
        """``b``'s objects per minute of running time, where that says something: None for a bucket at the start or
        end of the running time that ran less than half of it (half a gap with one object would read as a spike)."""
        if b.running_s < 0.5 * min((b.t_end_ns - b.t_start_ns) / NS_PER_S, self.running_s):
            return None
        return b.throughput_per_min

    def with_alerts(self, alerts: Iterable[Alert], thresholds: Iterable[tuple[str, str, float]] = ()) -> Report:
        """This report with ``alerts`` (sorted by start) and the ``(rule, kind, threshold)`` of the rules in force."""
        return dataclasses.replace(self, alerts=tuple(sorted(alerts, key=lambda a: (a.t_start_ns, a.rule))),
                                   thresholds=tuple(thresholds))


def running_span_ns(times_ns: Sequence[int], t_start_ns: int, t_end_ns: int) -> tuple[int, int] | None:
    """``(start, end)`` of the running time of objects finished at ``times_ns`` (sorted), within the period."""
    if not times_ns:
        return None
    first, last = times_ns[0], times_ns[-1]
    half_gap_ns = round((last - first) / (2 * (len(times_ns) - 1))) if len(times_ns) > 1 else 0  # small: exact as a float
    return max(t_start_ns, first - half_gap_ns), min(t_end_ns, last + half_gap_ns)


def _overlap_s(a0: int, a1: int, b0: int, b1: int) -> float:
    return max(0, min(a1, b1) - max(a0, b0)) / NS_PER_S


def build_report(
    events: Sequence[TrackEvent],
    *,
    t_start_ns: int,
    t_end_ns: int,
    bucket_s: float | None = None,
    zone: tzinfo = UTC,
    zone_label: str = "UTC",
    targets: Iterable[str] = ("pet_bottle",),
    line: str = "line",
    mode: str = "airjet",
) -> Report:
    """Aggregate the events with ``t_start_ns <= t_wall_ns < t_end_ns`` into clock-aligned buckets.

    Args:
        events: track events (any order; others outside the period are ignored).
        t_start_ns, t_end_ns: the period (wall-clock epoch ns).
        bucket_s: bucket size in seconds (it must tile the day or be whole days); None: about 48 buckets over the
            running time.
        zone, zone_label: time zone of the bucket edges, and its name for people.
        targets: the target classes (``policy.targets``).
        line: the line's name; ``mode``: ``line.mode`` (used for the verb when no ejection or pick was stored).

    Raises:
        ValueError: an empty period or a bucket that cannot be aligned to the clock.
    """
    if t_end_ns <= t_start_ns:
        raise ValueError("the report period is empty: the end (--until) must be after the start (--since)")
    if bucket_s is not None:
        bucket_s = check_bucket_s(bucket_s)
    inside = sorted((e for e in events if t_start_ns <= e.t_wall_ns < t_end_ns), key=lambda e: e.t_wall_ns)
    target_set = frozenset(targets)
    times = [e.t_wall_ns for e in inside]
    span = running_span_ns(times, t_start_ns, t_end_ns)
    if bucket_s is not None:
        size = int(bucket_s)
    elif span is not None and len(times) > 1:  # about 48 buckets, each long enough for about 10 objects
        size = nice_bucket_s((span[1] - span[0]) / NS_PER_S, at_least_s=10 * (times[-1] - times[0]) / (len(times) - 1) / NS_PER_S)
    else:
        size = nice_bucket_s((t_end_ns - t_start_ns) / NS_PER_S)
    totals = Bucket(t_start_ns, t_end_ns)
    buckets: list[Bucket] = []
    if span is not None:
        run0, run1 = span
        edges = bucket_edges_ns(times[0], times[-1] + 1, size, zone)  # buckets where objects are, not empty ones
        buckets = [Bucket(a, b, running_s=_overlap_s(a, b, run0, run1)) for a, b in itertools.pairwise(edges)]
        k = 0
        for e in inside:
            while e.t_wall_ns >= buckets[k].t_end_ns:
                k += 1
            buckets[k].add(e, target_set)
            totals.add(e, target_set)
        totals.running_s = (run1 - run0) / NS_PER_S
    return Report(
        line=line,
        verb=line_verb(mode, inside),
        zone=zone,
        zone_label=zone_label,
        t_start_ns=t_start_ns,
        t_end_ns=t_end_ns,
        bucket_s=size,
        targets=tuple(targets),
        classes=tuple(sorted(totals.objects)),
        buckets=tuple(buckets),
        first_ns=times[0] if times else None,
        last_ns=times[-1] if times else None,
        running_start_ns=span[0] if span else None,
        running_end_ns=span[1] if span else None,
        totals=totals,
    )
