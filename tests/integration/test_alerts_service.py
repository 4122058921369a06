"""Alert thresholds in the running service: rules from the config, evaluated over the line's real SQLite event store,
raised alerts written to the store's alerts table and exported on the real ``/metrics`` endpoint and ``/status``."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from sorter.analytics.sqlite_store import SqliteEventStore
from sorter.config import load_config
from sorter.runtime.line import build_line
from sorter.runtime.loops import run_line
from sorter.runtime.service_setup import start_service

SITE = {
    "sim": {"density_per_m2": 3, "seed": 5, "class_mix": {"pet_bottle": 8.0, "alu_can": 1.0, "cardboard": 1.0}},
    "detector": {"type": "oracle"},
    "service": {"http_port": 0},
    "analytics": {
        "flush_interval_s": 0.2,
        "outcome_wait_s": 0.5,
        "alerts": {
            "step_s": 1,
            "rules": [
                # far more PET than the plant expects: raised within seconds of the start
                {"kind": "class_share", "class_name": "pet_bottle", "above_pct": 50, "window_min": 0.05, "min_count": 5},
                # the oracle ejects targets only: no contamination, this one stays quiet
                {"kind": "contamination_share", "above_pct": 5, "window_min": 0.05, "min_count": 3},
            ],
        },
    },
}


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return str(r.read().decode())


def _alert_samples(text: str) -> dict[tuple[str, str], float]:
    """``(metric, rule) -> value`` of the ``sorter_alert_*`` gauges."""
    out: dict[tuple[str, str], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith("sorter_alert_"):
                out[(s.name, s.labels["rule"])] = s.value
    return out


def test_a_threshold_crossed_on_the_running_line_reaches_the_store_metrics_and_status(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({**SITE, "analytics": {**SITE["analytics"], "store": str(db)}}))
    cfg = load_config(["configs/sim-airjet.yaml", site])
    line = build_line(cfg, fast=False)
    service, server = start_service(line, None)
    assert server is not None and service.alerts is not None
    before = _alert_samples(_get(server.port, "/metrics"))
    # every rule is exported from the start, nothing active
    assert before[("sorter_alert_active", "class_share:pet_bottle")] == 0.0
    assert before[("sorter_alert_threshold", "contamination_share")] == 5.0
    stop = threading.Event()
    summary: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: summary.update(run_line(line, 60.0, False, stop)), name="line")
    runner.start()
    samples: dict[tuple[str, str], float] = {}
    status: dict[str, Any] = {}
    try:
        t_end = time.monotonic() + 60.0
        while time.monotonic() < t_end:
            samples = _alert_samples(_get(server.port, "/metrics"))
            status = json.loads(_get(server.port, "/status"))
            if samples.get(("sorter_alert_active", "class_share:pet_bottle")) == 1.0 and status["alerts"]:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the PET share alert was never raised; last gauges {samples}")
    finally:
        stop.set()
        runner.join(30.0)
        server.close()
        service.close()
    assert not runner.is_alive()

    # /metrics: the raised rule with its value over its threshold, the quiet one at zero
    share = samples[("sorter_alert_value", "class_share:pet_bottle")]
    assert share > 50.0 and samples[("sorter_alert_threshold", "class_share:pet_bottle")] == 50.0
    assert samples[("sorter_alert_active", "contamination_share")] == 0.0
    assert samples.get(("sorter_alert_value", "contamination_share"), 0.0) == 0.0
    # /status: the active alert in words
    [alert] = status["alerts"]
    assert alert["rule"] == "class_share:pet_bottle" and alert["unit"] == "%" and alert["window_s"] == 3.0
    assert "pet_bottle" in alert["message"] and alert["value"] > 50.0

    # the event store: the alert is a row of its alerts table, read back by the store and by plain SQL
    store = SqliteEventStore(db)
    try:
        stored = store.alerts()
    finally:
        store.close()
    assert [a.rule for a in stored] == ["class_share:pet_bottle"]
    assert abs(stored[0].t_start_ns / 1e9 - alert["since_wall_s"]) < 0.01
    assert stored[0].t_start_ns % 1_000_000_000 == 0  # evaluated on whole seconds (step_s 1)
    assert stored[0].value > 50.0 and stored[0].threshold == 50.0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT rule, kind, unit FROM alerts").fetchall()
        n_events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert rows == [("class_share:pet_bottle", "class_share", "%")]
    assert n_events >= 5  # the alert was judged on the line's own events


def test_a_live_reload_of_the_targets_reaches_the_alert_rules(tmp_path: Path) -> None:
    from sorter.analytics.events import TrackEvent

    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({**SITE, "analytics": {**SITE["analytics"], "store": str(tmp_path / "events.db")},
                                    "service": {"http_port": None}}))
    cfg = load_config(["configs/sim-airjet.yaml", site])
    reloaded = load_config(["configs/sim-airjet.yaml", site], ["policy.targets=[film]"])
    line = build_line(cfg, fast=True)
    service, _server = start_service(line, lambda: reloaded)
    assert service.alerts is not None
    out: list[tuple[bool, str]] = []
    try:
        t_reload_ns = time.time_ns()
        asker = threading.Thread(target=lambda: out.append(service.reload(timeout_s=30.0)))
        asker.start()
        while asker.is_alive():  # the loop's side: a reload is applied between two frames
            service.begin_cycle()
            time.sleep(0.01)
        assert out and out[0][0], out
        assert "policy.targets" in out[0][1]

        def ejected(cls: str, t_ns: int) -> TrackEvent:
            return TrackEvent(t_ns, 0, 0, 1, cls, 0.9, 90.0, 60.0, 0.0, 0.0, 4, "eject", (1,), "executed")

        before, after = t_reload_ns - 1_000_000_000, time.time_ns() + 1_000_000_000
        index = service.alerts.monitor.evaluator.index([ejected("pet_bottle", before), ejected("film", after)])
        counts = index.window(before - 1, after + 1)
        assert counts.actuated == 2 and counts.actuated_nontarget == 0  # each judged by the targets of its time
        late_pet = service.alerts.monitor.evaluator.index([ejected("pet_bottle", after)]).window(before, after + 1)
        assert late_pet.actuated_nontarget == 1  # PET ejected after the reload is contamination now
    finally:
        service.close()
        line.close()
