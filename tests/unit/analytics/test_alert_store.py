"""Alerts in a real SQLite event store, and the live monitor that writes them: raised, updated, cleared, restarts, outages."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from sorter.analytics.alert_eval import evaluate_history
from sorter.analytics.alert_monitor import AlertMonitor
from sorter.analytics.alerts import Alert, AlertsConfig
from sorter.analytics.events import TrackEvent
from sorter.analytics.sqlite_store import SqliteEventStore

S = 1_000_000_000
T0 = 1_800_000_000 * S


def at(t_s: float) -> int:
    return T0 + round(t_s * S)


def stream() -> list[TrackEvent]:
    """An ejection every 10 s for an hour; film (a non-target) one in three from 1200 s to 2100 s."""
    out = []
    for k in range(360):
        t = 10 * k + 5
        cls = "film" if 1200 <= t < 2100 and k % 3 == 0 else "pet_bottle"
        out.append(TrackEvent(at(t), k, k, k, cls, 0.9, 90.0, 60.0, 0.0, 0.0, 4, "eject", (k,), "executed"))
    return out


CFG = AlertsConfig.model_validate({"rules": [{"kind": "contamination_share", "above_pct": 10, "window_min": 5}]})


def alert(rule: str, start_s: int, end_s: int | None, value: float = 12.5) -> Alert:
    return Alert(rule, "contamination_share", at(start_s), None if end_s is None else at(end_s), value, 10.0, "%", 300.0,
                 f"contamination share {value} %")


def test_alerts_round_trip_upsert_and_window_queries(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        store.put_alerts([alert("a", 100, None), alert("b", 500, 800)])
        store.put_alerts([alert("a", 100, 400, value=20.0)])  # the same alert (rule, start) ended: updated, not added
        store.put_alerts([])
        assert store.alerts() == [alert("a", 100, 400, value=20.0), alert("b", 500, 800)]
        assert store.alerts(since_ns=at(400), until_ns=at(900)) == [alert("b", 500, 800)]  # [100, 400) ends at 400
        assert store.alerts(since_ns=at(0), until_ns=at(500)) == [alert("a", 100, 400, value=20.0)]
        store.put_alerts([alert("c", 900, None)])
        assert store.alerts(active_only=True) == [alert("c", 900, None)]
        assert store.alerts(since_ns=at(10_000)) == [alert("c", 900, None)]  # an open alert overlaps every later window
    rows = sqlite3.connect(tmp_path / "events.db").execute(
        "SELECT rule, t_start_ns, t_end_ns, value, threshold, unit FROM alerts ORDER BY rule").fetchall()
    assert rows == [("a", at(100), at(400), 20.0, 10.0, "%"), ("b", at(500), at(800), 12.5, 10.0, "%"),
                    ("c", at(900), None, 12.5, 10.0, "%")]


def test_a_store_made_before_alerts_gets_the_table_and_keeps_its_events(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with SqliteEventStore(db) as store:
        store.add_batch(stream()[:5])
    with sqlite3.connect(db) as conn:  # what a store written by an earlier sorter looks like
        conn.execute("DROP TABLE alerts")
    with SqliteEventStore(db) as store:
        assert store.count() == 5 and store.alerts() == []
        store.put_alerts([alert("a", 1, 2)])
        assert len(store.alerts()) == 1
    version = sqlite3.connect(db).execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    assert version == 1  # additive: an earlier sorter still opens the store


def test_monitor_records_the_alert_live_and_matches_the_report(tmp_path: Path) -> None:
    events = stream()
    with SqliteEventStore(tmp_path / "events.db") as store:
        mon = AlertMonitor(store, CFG, targets=("pet_bottle",), t_begin_ns=T0, lag_s=10)
        written = 0
        # the line writes its events as they finish; the service polls every 7 s (not on the minute)
        for t_now in range(7, 3600, 7):
            batch = [e for e in events[written:] if e.t_wall_ns < at(t_now)]
            store.add_batch(batch)
            written += len(batch)
            mon.poll(at(t_now))
            if t_now == 1330:  # 1320 was evaluated at 1330 (10 s lag): raised and written
                assert [(a.t_start_ns, a.t_end_ns) for a in store.alerts()] == [(at(1320), None)]
                assert mon.active()[0].t_start_ns == at(1320)
        stored = store.alerts()
    assert [(a.rule, a.t_start_ns, a.t_end_ns) for a in stored] == [("contamination_share", at(1320), at(2340))]
    assert stored[0].value == pytest.approx(100 / 3) and stored[0].threshold == 10.0
    report = evaluate_history(CFG, events, targets=("pet_bottle",), t_begin_ns=T0, t_end_ns=at(3600))
    assert stored == report  # the live monitor and the report's evaluation give the same alert


def test_a_restart_continues_the_open_alert_and_closes_orphans(tmp_path: Path) -> None:
    events = stream()
    with SqliteEventStore(tmp_path / "events.db") as store:
        store.add_batch([e for e in events if e.t_wall_ns < at(1500)])
        first = AlertMonitor(store, CFG, targets=("pet_bottle",), t_begin_ns=T0, lag_s=0)
        first.poll(at(1500))
        store.put_alerts([alert("removed rule", 600, None)])  # left open by a rule no longer in the config
        assert len(store.alerts(active_only=True)) == 2
        # the service restarts at 1500 s
        again = AlertMonitor(store, CFG, targets=("pet_bottle",), t_begin_ns=at(1500), lag_s=0)
        assert [a.rule for a in again.active()] == ["contamination_share"]
        closed = [a for a in store.alerts() if a.rule == "removed rule"]
        assert closed[0].t_end_ns == at(1500) and "closed at restart" in closed[0].message
        store.add_batch([e for e in events if e.t_wall_ns >= at(1500)])
        again.poll(at(3600))
        final = [a for a in store.alerts() if a.rule == "contamination_share"]
    assert [(a.t_start_ns, a.t_end_ns) for a in final] == [(at(1320), at(2340))]  # one alert across the restart


def test_an_unwritable_store_keeps_the_changes_for_the_next_poll(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    events = stream()
    with SqliteEventStore(db, busy_timeout_s=0.05) as store:
        store.add_batch(events)
        mon = AlertMonitor(store, CFG, targets=("pet_bottle",), t_begin_ns=T0, lag_s=0)
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock: our writes fail, reads still work
        try:
            changes = mon.poll(at(1400))
            assert [c.t_start_ns for c in changes][:1] == [at(1320)] and mon.write_errors == 1
            assert store.alerts() == []
        finally:
            other.execute("ROLLBACK")
            other.close()
        mon.poll(at(1460))
        assert [(a.t_start_ns, a.t_end_ns) for a in store.alerts()] == [(at(1320), None)]


def test_a_long_pause_is_not_replayed_for_hours(tmp_path: Path) -> None:
    stopped = AlertsConfig.model_validate({"rules": [{"kind": "throughput", "below_per_min": 1, "window_min": 5}]})
    with SqliteEventStore(tmp_path / "events.db") as store:
        mon = AlertMonitor(store, stopped, targets=("pet_bottle",), t_begin_ns=T0, lag_s=0)
        # first poll ten hours after the start (the service hung): only the last 60 steps are evaluated
        (raised,) = mon.poll(at(10 * 3600))
        assert raised.t_start_ns == at(10 * 3600 - 59 * 60) and raised.value == 0.0
        assert mon.poll(at(10 * 3600 + 30)) == []  # the next step is not due yet
        no_rules = AlertMonitor(store, AlertsConfig(), targets=(), t_begin_ns=T0)
        assert no_rules.poll(at(3600)) == [] and no_rules.gauges() == []


def test_alert_records_are_frozen() -> None:
    a = alert("a", 1, None)
    assert a.active and not dataclasses.replace(a, t_end_ns=at(2)).active
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.value = 3.0  # type: ignore[misc]


def test_a_reload_of_the_targets_does_not_turn_earlier_ejections_into_contamination(tmp_path: Path) -> None:
    """Targets change from PET to film at 1800 s: PET ejected before then were targets, film ejected after too."""
    events = [TrackEvent(at(10 * k + 5), k, k, k, "pet_bottle" if 10 * k + 5 < 1800 else "film", 0.9, 90.0, 60.0, 0.0,
                         0.0, 4, "eject", (k,), "executed") for k in range(360)]
    with SqliteEventStore(tmp_path / "events.db") as store:
        store.add_batch(events)
        mon = AlertMonitor(store, CFG, targets=("pet_bottle",), t_begin_ns=T0, lag_s=10)
        mon.evaluator.set_targets(("film",), at(1800))
        for t_now in range(60, 3600, 60):
            mon.poll(at(t_now))
        assert store.alerts() == [] and mon.active() == []
        # judged by the targets of the end alone, the PET ejected before the reload would be contamination
        stale = AlertMonitor(store, CFG.model_copy(update={"rules": (CFG.rules[0].model_copy(update={"name": "stale"}),)}),
                             targets=("film",), t_begin_ns=T0, lag_s=10)
        stale.poll(at(1900))
        assert [a.rule for a in stale.active()] == ["stale"]
