"""The numbers ``/metrics`` exposes, and their Prometheus text (rendered by ``prometheus_client``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """What ``/metrics`` exposes, copied from the main loop's counters.

    Attributes:
        state: service state (``initialising``, ``running``, ``degraded``, ``paused``, ``stopping``).
        uptime_s: seconds since the loop started.
        frames: frames processed.
        frames_dropped: frames overwritten before processing (capture and loop).
        fps: processed frames per second over the last status interval.
        latency_ms: ``{stage: {"p50": ms, "p99": ms}}``.
        commands: ``{"sent": n, "executed": n, "late_dropped": n, ...}``.
        actuator: the actuator's own counters (acks, NAKs, retransmits, reconnects, ...).
        objects_by_class: confirmed objects that left the view, per class.
        faults: faults raised since start, per kind.
        events: event-store counters (``written``, ``dropped``, ``write_errors``).
        overload: the loop against the camera rate: ``overloaded`` (1/0), ``drop_share`` over the window,
            ``budget_ms``, ``stage_p50_ms`` per stage over the window.
        alert_gauges: the alert rules' gauges (``name``, ``help``, ``labels`` as ``[key, value]`` pairs, ``value``).
    """

    state: str
    uptime_s: float
    frames: int
    frames_dropped: int
    fps: float
    latency_ms: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    commands: Mapping[str, int] = field(default_factory=dict)
    actuator: Mapping[str, int] = field(default_factory=dict)
    objects_by_class: Mapping[str, int] = field(default_factory=dict)
    faults: Mapping[str, int] = field(default_factory=dict)
    events: Mapping[str, int] = field(default_factory=dict)
    overload: Mapping[str, Any] = field(default_factory=dict)
    alert_gauges: tuple[Mapping[str, Any], ...] = ()

    @staticmethod
    def overload_of(monitor: Any) -> dict[str, Any]:
        """The ``overload`` field from a ``sorter.runtime.overload.OverloadMonitor`` (empty without one)."""
        if monitor is None:
            return {}
        v = monitor.verdict
        return {
            "overloaded": 1 if monitor.overloaded else 0,
            "drop_share": v.drop_share if v is not None else 0.0,
            "budget_ms": round(monitor.budget_ms, 3),
            "stage_p50_ms": dict(v.stage_p50_ms) if v is not None else {},
        }

    def as_dict(self) -> dict[str, object]:
        """Plain dicts throughout (what the line sends to the web process)."""
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in asdict(self).items()}


def prometheus_text(m: MetricsSnapshot, prefix: str = "sorter") -> str:
    """Render ``m`` in the Prometheus text format (0.0.4); every family has HELP and TYPE lines."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from sorter.runtime.web.metrics import SnapshotCollector

    snap = m.as_dict()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SnapshotCollector(lambda: snap))
    del prefix  # the families are named sorter_*
    return generate_latest(reg).decode()
