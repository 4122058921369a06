"""Service pieces without a running line: Prometheus text, reload safety, systemd notifications over a real socket."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from sorter.config import load_config
from sorter.runtime.metrics_text import MetricsSnapshot, prometheus_text
from sorter.runtime.reload import changed_keys, unsafe_changes
from sorter.runtime.sdnotify import SystemdNotifier

_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$')


def _snapshot() -> MetricsSnapshot:
    return MetricsSnapshot(
        state="degraded",
        uptime_s=12.5,
        frames=700,
        frames_dropped=3,
        fps=59.8,
        latency_ms={"detect": {"p50": 5.1, "p99": 7.25}, "total": {"p50": 9.0, "p99": 14.0}},
        commands={"sent": 10, "late_dropped": 1},
        actuator={"link_naks": 2, "link-acks": 9},
        objects_by_class={"pet_bottle": 4, 'we"ird': 1},
        faults={"camera": 1},
        events={"written": 5},
    )


def test_prometheus_text_is_valid_exposition_format() -> None:
    text = prometheus_text(_snapshot())
    assert text.endswith("\n")
    families: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge")
            families[name] = kind
        elif line.startswith("# HELP "):
            continue
        else:
            assert _SAMPLE.match(line), line
            assert line.split("{")[0].split(" ")[0] in families, line
    assert 'sorter_state{state="degraded"} 1' in text and 'sorter_state{state="running"} 0' in text
    assert 'sorter_stage_latency_ms{stage="detect",quantile="0.99"} 7.25' in text
    assert 'sorter_actuator_total{counter="link_acks"} 9' in text  # names sanitised
    assert 'sorter_objects_total{class="we\\"ird"} 1' in text  # label values escaped
    assert "sorter_frames_total 700" in text


def test_reload_accepts_policy_and_threshold_only(tmp_path: Path) -> None:
    old = load_config(None)
    assert changed_keys(old, old) == []
    safe = load_config(None, ["policy.targets=[alu_can]", "detector.min_score=0.5"])
    assert changed_keys(old, safe) == ["detector.min_score", "policy.targets"]
    assert unsafe_changes(old, safe) == []
    unsafe = load_config(None, ["policy.targets=[alu_can]", "airjet.y_eject_mm=900", "detector.type=oracle"])
    assert unsafe_changes(old, unsafe) == ["airjet.y_eject_mm", "detector.type"]


def test_systemd_notifications_reach_a_real_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(str(path))
        rx.settimeout(2.0)
        n = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
        assert n.enabled and n.watchdog_interval_s == pytest.approx(1.0)
        assert n.ready("running: test")
        assert rx.recv(4096) == b"READY=1\nSTATUS=running: test"
        assert n.watchdog_due(now_s=100.0)
        assert n.ping("ok", now_s=100.0)
        assert rx.recv(4096) == b"WATCHDOG=1\nSTATUS=ok"
        assert not n.watchdog_due(now_s=100.5) and n.watchdog_due(now_s=101.0)
        assert n.stopping()
        assert rx.recv(4096).startswith(b"STOPPING=1")
        n.close()


def test_notifier_is_silent_outside_systemd_and_survives_a_dead_socket(tmp_path: Path) -> None:
    assert not SystemdNotifier({}).ready("x")
    assert not SystemdNotifier({}).watchdog_due()
    gone = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert gone.enabled and not gone.ready("x")  # logged, never raised
    other_pid = SystemdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_interval_s is None


def test_service_degrades_on_a_lost_link_or_a_failing_store_and_recovers() -> None:
    from types import SimpleNamespace

    from sorter.runtime.accounting import RunCounters
    from sorter.runtime.service import LineService

    link = {"link_connected": 1}
    writer = SimpleNamespace(write_errors=0, last_error=None)
    line = SimpleNamespace(
        actuator=SimpleNamespace(stats=lambda: dict(link)),
        events=SimpleNamespace(writer=writer),
        counters=RunCounters(),
        cfg=load_config(None),
    )
    svc = LineService(line, notifier=SystemdNotifier({}))  # type: ignore[arg-type]
    svc._last = object()  # type: ignore[assignment]  # past the first frame
    svc.health_tick()
    assert svc.state == "running"
    link["link_connected"] = 0
    writer.write_errors, writer.last_error = 2, "EventStoreFullError: disk full"
    svc.health_tick()
    assert svc.state == "degraded"
    assert "controller link down" in svc.reason() and "disk full" in svc.reason()
    assert svc.health() == (False, svc.reason())
    assert svc.actuation_enabled  # only a camera problem pauses actuation
    link["link_connected"] = 1
    svc.health_tick()  # no new write errors since the last tick: the store recovered
    assert svc.state == "running" and svc.faults == {"controller": 1, "event store": 1}
