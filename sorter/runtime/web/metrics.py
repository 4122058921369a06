"""``/metrics`` through ``prometheus_client``: the line's numbers as metric families, from a snapshot (a plain dict).

The names are those the endpoint has always had (``sorter_frames_total``,
``sorter_stage_latency_ms``, ...), so dashboards keep working. The web process
renders them; the line's process only sends the numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

STATES = ("initialising", "running", "degraded", "paused", "stopping")
_NAME = re.compile(r"[^a-zA-Z0-9_]")


def metric_families(m: Mapping[str, Any], prefix: str = "sorter") -> list[Metric]:
    """The families of one metrics snapshot (the fields of ``sorter.runtime.metrics_text.MetricsSnapshot``)."""
    p = prefix
    state = GaugeMetricFamily(f"{p}_state", "1 for the current service state", labels=["state"])
    for s in STATES:
        state.add_metric([s], 1.0 if m.get("state") == s else 0.0)
    lat = GaugeMetricFamily(f"{p}_stage_latency_ms", "per-stage latency percentiles in milliseconds (recent samples)",
                            labels=["stage", "quantile"])
    for stage, q in sorted((m.get("latency_ms") or {}).items()):
        for key, quantile in (("p50", "0.5"), ("p99", "0.99")):
            if key in q:
                lat.add_metric([stage, quantile], float(q[key]))
    out: list[Metric] = [
        state,
        GaugeMetricFamily(f"{p}_uptime_seconds", "seconds since the loop started", value=round(float(m.get("uptime_s", 0)), 3)),
        CounterMetricFamily(f"{p}_frames", "frames processed", value=int(m.get("frames", 0))),
        CounterMetricFamily(f"{p}_frames_dropped", "frames overwritten before processing", value=int(m.get("frames_dropped", 0))),
        GaugeMetricFamily(f"{p}_frame_rate_fps", "processed frames per second", value=round(float(m.get("fps", 0.0)), 3)),
        lat,
    ]
    labelled: tuple[tuple[str, str, str, str, Callable[[str], str]], ...] = (
        ("commands", "commands by outcome", "outcome", "commands", str),
        ("actuator", "actuator and controller-link counters (acks, naks, retransmits, reconnects)", "counter", "actuator",
         lambda k: _NAME.sub("_", k)),
        ("objects", "confirmed objects that left the view, by class", "class", "objects_by_class", str),
        ("faults", "faults raised, by kind", "kind", "faults", str),
        ("events", "event-store writer counters", "counter", "events", str),
    )
    over = m.get("overload") or {}
    if over:
        out.append(GaugeMetricFamily(f"{p}_overloaded", "1 while the loop cannot hold the camera rate",
                                     value=float(over.get("overloaded", 0))))
        out.append(GaugeMetricFamily(f"{p}_frames_dropped_share", "share of camera frames dropped over the overload window",
                                     value=float(over.get("drop_share", 0.0))))
        out.append(GaugeMetricFamily(f"{p}_frame_budget_ms", "time per frame at the camera rate",
                                     value=float(over.get("budget_ms", 0.0))))
        p50 = GaugeMetricFamily(f"{p}_stage_window_p50_ms", "per-stage median over the overload window (booked time)",
                                labels=["stage"])
        for stage, v in sorted((over.get("stage_p50_ms") or {}).items()):
            p50.add_metric([stage], float(v))
        out.append(p50)
    for name, help_text, label, key, clean in labelled:
        fam = CounterMetricFamily(f"{p}_{name}", help_text, labels=[label])
        for k, v in sorted((m.get(key) or {}).items()):
            if isinstance(v, bool | int | float):
                fam.add_metric([clean(str(k))], float(v))
        out.append(fam)
    out += alert_families(m.get("alert_gauges") or ())
    return out


def alert_families(samples: Iterable[Mapping[str, Any]]) -> list[Metric]:
    """``sorter_alert_active``, ``sorter_alert_value``, ``sorter_alert_threshold``: one gauge family per name, one
    sample per rule (labels ``rule``, ``kind``, ``unit``); nothing when the line has no alert rules."""
    families: dict[str, GaugeMetricFamily] = {}
    for g in samples:
        labels = [(str(k), str(v)) for k, v in g.get("labels") or ()]
        name = str(g["name"])
        fam = families.get(name)
        if fam is None:
            fam = families[name] = GaugeMetricFamily(name, str(g.get("help", name)), labels=[k for k, _ in labels])
        fam.add_metric([v for _, v in labels], float(g["value"]))
    return list(families.values())


class SnapshotCollector(Collector):
    """Yields the families of whatever snapshot ``get`` returns at scrape time (nothing before the first one)."""

    def __init__(self, get: Callable[[], Mapping[str, Any] | None]) -> None:
        self._get = get

    def collect(self) -> Iterator[Metric]:
        m = self._get()
        if m is not None:
            yield from metric_families(m)


def registry_for(get: Callable[[], Mapping[str, Any] | None], line_pid: int | None = None) -> CollectorRegistry:
    """A registry of the line's metrics and, with ``line_pid``, the CPU and memory of the line's process."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SnapshotCollector(get))
    if line_pid is not None:
        from prometheus_client import ProcessCollector

        ProcessCollector(pid=lambda: line_pid, registry=reg)
    return reg
