"""Prometheus text exposition (format 0.0.4) of a running line's numbers. Pure: dict in, text out."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_NAME = re.compile(r"[^a-zA-Z0-9_]")


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


STATES = ("initialising", "running", "degraded", "paused", "stopping")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


class _Doc:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        lab = ",".join(f'{k}="{_label(v)}"' for k, v in (labels or {}).items())
        self.lines.append(f"{name}{{{lab}}} {_num(value)}" if lab else f"{name} {_num(value)}")


def prometheus_text(m: MetricsSnapshot, prefix: str = "sorter") -> str:
    """Render ``m`` in the Prometheus text format; every family has HELP and TYPE lines."""
    d = _Doc()
    p = prefix
    d.family(f"{p}_state", "gauge", "1 for the current service state")
    for s in STATES:
        d.sample(f"{p}_state", 1.0 if m.state == s else 0.0, {"state": s})
    d.family(f"{p}_uptime_seconds", "gauge", "seconds since the loop started")
    d.sample(f"{p}_uptime_seconds", round(m.uptime_s, 3))
    d.family(f"{p}_frames_total", "counter", "frames processed")
    d.sample(f"{p}_frames_total", m.frames)
    d.family(f"{p}_frames_dropped_total", "counter", "frames overwritten before processing")
    d.sample(f"{p}_frames_dropped_total", m.frames_dropped)
    d.family(f"{p}_frame_rate_fps", "gauge", "processed frames per second")
    d.sample(f"{p}_frame_rate_fps", round(m.fps, 3))
    d.family(f"{p}_stage_latency_ms", "gauge", "per-stage latency percentiles in milliseconds")
    for stage, q in sorted(m.latency_ms.items()):
        for key, quantile in (("p50", "0.5"), ("p99", "0.99")):
            if key in q:
                d.sample(f"{p}_stage_latency_ms", q[key], {"stage": stage, "quantile": quantile})
    d.family(f"{p}_commands_total", "counter", "commands by outcome")
    for k, v in sorted(m.commands.items()):
        d.sample(f"{p}_commands_total", v, {"outcome": k})
    d.family(f"{p}_actuator_total", "counter", "actuator and controller-link counters (acks, naks, retransmits, reconnects)")
    for k, v in sorted(m.actuator.items()):
        d.sample(f"{p}_actuator_total", v, {"counter": _NAME.sub("_", k)})
    d.family(f"{p}_objects_total", "counter", "confirmed objects that left the view, by class")
    for k, v in sorted(m.objects_by_class.items()):
        d.sample(f"{p}_objects_total", v, {"class": k})
    d.family(f"{p}_faults_total", "counter", "faults raised, by kind")
    for k, v in sorted(m.faults.items()):
        d.sample(f"{p}_faults_total", v, {"kind": k})
    d.family(f"{p}_events_total", "counter", "event-store writer counters")
    for k, v in sorted(m.events.items()):
        d.sample(f"{p}_events_total", v, {"counter": k})
    return "\n".join(d.lines) + "\n"
