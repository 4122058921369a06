"""Service pieces without a running line: Prometheus text, reload safety, systemd notifications over a real socket."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

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
    assert 'sorter_stage_latency_ms{quantile="0.99",stage="detect"} 7.25' in text  # prometheus_client sorts label names
    assert 'sorter_actuator_total{counter="link_acks"} 9' in text  # names sanitised
    assert 'sorter_objects_total{class="we\\"ird"} 1' in text  # label values escaped
    assert "sorter_frames_total 700" in text
    # and a real Prometheus parser reads the same series back
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("sorter_stage_latency_ms", (("quantile", "0.99"), ("stage", "detect")))] == 7.25
    assert samples[("sorter_objects_total", (("class", 'we"ird'),))] == 1
    assert samples[("sorter_frames_total", ())] == 700


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
    writer = SimpleNamespace(failing=False, last_error=None)
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
    writer.failing, writer.last_error = True, "EventStoreFullError: disk full"
    svc.health_tick()
    assert svc.state == "degraded"
    assert "controller link down" in svc.reason() and "disk full" in svc.reason()
    assert svc.health() == (False, svc.reason())
    assert svc.actuation_enabled  # only a camera problem pauses actuation
    link["link_connected"] = 1
    svc.health_tick()
    assert svc.state == "degraded" and "controller" not in svc.reason()  # the store still fails
    writer.failing = False  # a write succeeded again
    svc.health_tick()
    assert svc.state == "running" and svc.faults == {"controller": 1, "event store": 1}


def test_state_and_reason_are_read_together_while_a_camera_flaps() -> None:
    """The camera thread raises and clears its condition while /status is read: a reader never gets "degraded" with
    an empty reason, or "running" with a camera reason."""
    import threading
    from types import SimpleNamespace

    from sorter.runtime.accounting import RunCounters
    from sorter.runtime.service import LineService

    line = SimpleNamespace(actuator=SimpleNamespace(stats=dict), counters=RunCounters(), cfg=load_config(None))
    svc = LineService(line, notifier=SystemdNotifier({}))  # type: ignore[arg-type]
    svc._last = object()  # type: ignore[assignment]  # past the first frame
    done = threading.Event()

    def flap() -> None:
        for i in range(3000):
            svc.set_degraded("camera", "no fresh frame for more than 250 ms" if i % 2 == 0 else None)
        done.set()

    t = threading.Thread(target=flap)
    t.start()
    seen: set[str] = set()
    while not done.is_set():
        state, reason = svc.state_and_reason()
        seen.add(state)
        assert (state == "degraded") == bool(reason), (state, reason)
        ok, words = svc.health()
        assert ok == (words == "running") and (ok or words.startswith("camera: ")), (ok, words)
    t.join()
    assert svc.state_and_reason() == ("running", "") and svc.faults["camera"] == 1500


def test_service_degrades_when_the_store_disk_runs_low(tmp_path: Path) -> None:
    import shutil
    from types import SimpleNamespace

    from sorter.analytics import EventStoreFullError
    from sorter.runtime.accounting import RunCounters
    from sorter.runtime.events import create_event_recorder
    from sorter.runtime.service import LineService

    free_mb = shutil.disk_usage(tmp_path).free / 1e6
    cfg = load_config(None, [f"analytics.store={tmp_path / 'events.db'}", f"analytics.min_free_mb={free_mb * 0.5:.0f}"])
    line = SimpleNamespace(actuator=SimpleNamespace(stats=dict), events=SimpleNamespace(writer=SimpleNamespace(failing=False)),
                           counters=RunCounters(), cfg=cfg)
    svc = LineService(line, notifier=SystemdNotifier({}))  # type: ignore[arg-type]
    svc._last = object()  # type: ignore[assignment]
    svc.health_tick()
    assert svc.state == "running"
    # the disk "fills up": the real free space is now below the threshold (raised live, as another writer would)
    line.cfg = cfg.model_copy(update={"analytics": cfg.analytics.model_copy(update={"min_free_mb": free_mb * 100})})
    svc.health_tick()
    assert svc.state == "degraded" and "MB free on" in svc.reason() and "analytics.min_free_mb" in svc.reason()
    line.cfg = cfg
    svc.health_tick()
    assert svc.state == "running" and svc.faults == {"disk": 1}
    # at start-up the same shortage refuses to open the store, naming the folder and the fix
    short = load_config(None, [f"analytics.store={tmp_path / 'events.db'}", f"analytics.min_free_mb={free_mb * 100:.0f}"])
    with pytest.raises(EventStoreFullError, match=rf"only \d+ MB free on {tmp_path}.*df -h"):
        create_event_recorder(short.analytics, clock=None, line="x")  # type: ignore[arg-type]


def test_journald_lines_carry_the_syslog_priority() -> None:
    import logging

    from sorter.runtime.logsetup import JournalFormatter, configure_logging

    rec = logging.LogRecord("sorter.x", logging.WARNING, __file__, 1, "camera %s", ("lost",), None)
    assert JournalFormatter().format(rec) == "<4>sorter.x: camera lost"
    rec.levelno = logging.ERROR
    assert JournalFormatter().format(rec).startswith("<3>")
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        h = configure_logging(logging.INFO, {"JOURNAL_STREAM": "8:1234", "SORTER_JOURNAL_SOCKET": "/nonexistent/journal"})
        assert isinstance(h.formatter, JournalFormatter) and root.handlers == [h]
        h = configure_logging(logging.INFO, {})
        assert not isinstance(h.formatter, JournalFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_flight_recorder_dumps_the_last_cycles_on_a_new_fault(tmp_path: Path) -> None:
    import json
    from types import SimpleNamespace

    import numpy as np

    from sorter.entities import Detections, Frame
    from sorter.runtime.accounting import RunCounters
    from sorter.runtime.pipeline import CycleResult
    from sorter.runtime.service import LineService

    cfg = load_config(None, [f"service.flight_recorder_dir={tmp_path / 'flight'}", "service.flight_recorder_cycles=10"])
    line = SimpleNamespace(actuator=SimpleNamespace(stats=dict), events=None, counters=RunCounters(), cfg=cfg)
    svc = LineService(line, notifier=SystemdNotifier({}))  # type: ignore[arg-type]
    assert svc.flight is not None
    empty = Detections(boxes_px=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32), class_ids=np.zeros(0, np.int32))
    for k in range(25):
        frame = Frame(image=np.zeros((0, 0, 3), np.uint8), t_capture_ns=k * 16_666_667, s_capture_mm=k * 41.7, frame_index=k)
        svc.end_cycle(CycleResult(frame, empty, (), (), (), 0, (), k * 41.7, 2500.0))
    svc.set_degraded("camera", "no fresh frame")
    svc.set_degraded("camera", "no fresh frame")  # the same fault again: no second dump
    assert svc.flight.dumps == 1
    for _ in range(100):
        files = list((tmp_path / "flight").glob("flight-*-camera-0.json"))
        if files:
            break
        import time

        time.sleep(0.02)
    doc = json.loads(files[0].read_text())
    assert doc["fault"] == "camera" and doc["reason"] == "no fresh frame"
    assert [c["frame_index"] for c in doc["cycles"]] == list(range(15, 25))  # the last 10 cycles, in order


def _parse_journal_datagram(data: bytes) -> dict[str, str]:
    """journald's native protocol, read the way journald reads it (systemd's journal-native docs)."""
    import struct

    fields: dict[str, str] = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            fields[k.decode()] = v.decode()
            i = nl + 1
        else:
            (n,) = struct.unpack("<Q", data[nl + 1 : nl + 9])
            fields[line.decode()] = data[nl + 9 : nl + 9 + n].decode()
            assert data[nl + 9 + n : nl + 10 + n] == b"\n"
            i = nl + 10 + n
    return fields


def test_journal_entries_are_structured_with_fault_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import logging
    from types import SimpleNamespace

    from sorter.runtime.accounting import RunCounters
    from sorter.runtime.logsetup import JournalHandler, configure_logging
    from sorter.runtime.service import LineService

    path = str(tmp_path / "journal.sock")
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # stands where journald's socket is
    journal.bind(path)
    journal.settimeout(2.0)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        h = configure_logging(logging.INFO, {"JOURNAL_STREAM": "8:1234", "SORTER_JOURNAL_SOCKET": path})
        assert isinstance(h, JournalHandler)
        try:
            raise OSError("read failed")
        except OSError:
            logging.getLogger("sorter.capture").exception("camera lost")
        e = _parse_journal_datagram(journal.recv(65536))
        assert e["PRIORITY"] == "3" and e["SYSLOG_IDENTIFIER"] == "sorter" and e["LOGGER"] == "sorter.capture"
        assert e["MESSAGE"].startswith("camera lost\nTraceback") and "OSError: read failed" in e["MESSAGE"]
        assert e["CODE_FUNC"] == "test_journal_entries_are_structured_with_fault_fields" and int(e["CODE_LINE"]) > 0

        line = SimpleNamespace(actuator=SimpleNamespace(stats=lambda: {"link_connected": 0}), events=None,
                               counters=RunCounters(), cfg=load_config(None))
        svc = LineService(line, notifier=SystemdNotifier({}))  # type: ignore[arg-type]
        svc.health_tick()
        e = _parse_journal_datagram(journal.recv(65536))
        assert e["SORTER_FAULT"] == "controller" and e["SORTER_STATE"] == "degraded" and e["PRIORITY"] == "3"
        assert e["SORTER_REASON"] == "controller link down, reconnecting"

        journal.close()  # journald gone: the entry still comes out, as a priority-tagged stderr line
        os.unlink(path)
        logging.getLogger("sorter.x").warning("still here")
        assert "<4>sorter.x: still here" in capsys.readouterr().err
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_reloaded_targets_score_the_objects_that_follow() -> None:
    from dataclasses import dataclass
    from types import SimpleNamespace
    from typing import Any

    from sorter.entities import MATERIAL_CLASSES
    from sorter.runtime.accounting import RunCounters
    from sorter.runtime.params import policy_params
    from sorter.runtime.service import LineService
    from sorter.sim.records import ObjectFate
    from sorter.sim.scoring import Scoreboard

    cfg = load_config(None, ["policy.targets=[pet_bottle]"])
    board = Scoreboard(frozenset({MATERIAL_CLASSES.index("pet_bottle")}))
    @dataclass(frozen=True)
    class Params:  # the planner's params, as far as a reload touches them
        policy: Any

    planner = SimpleNamespace(params=Params(policy_params(cfg)))
    line = SimpleNamespace(cfg=cfg, scoreboard=board, counters=RunCounters(), events=None,
                           pipeline=SimpleNamespace(planner=planner, min_score=cfg.detector.min_score),
                           actuator=SimpleNamespace(stats=dict))
    svc = LineService(line, notifier=SystemdNotifier({}))  # type: ignore[arg-type]
    can = MATERIAL_CLASSES.index("alu_can")
    svc._apply(load_config(None, ["policy.targets=[alu_can]"]))
    assert board.target_class_ids == frozenset({can})
    assert planner.params.policy != policy_params(cfg)  # the planner took the new targets as well
    board.record_fate(ObjectFate(object_id=1, class_id=can, fate="passed", t_ns=0, counted=True))
    assert board.targets_passed == 1 and board.recovery == 0.0  # a missed can now counts against recovery
