"""Alerts in the PostgreSQL event store against a real server: per line, upserts, the live monitor, a user without CREATE."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from conftest import PgServer  # tests/integration/conftest.py (pytest puts its folder on sys.path)

from sorter.analytics import EventStoreError, TrackEvent, open_store
from sorter.analytics.alert_monitor import AlertMonitor
from sorter.analytics.alerts import Alert, AlertsConfig
from sorter.cli import main as cli_main

S = 1_000_000_000
T0 = 1_800_000_000 * S


def at(t_s: float) -> int:
    return T0 + round(t_s * S)


def alert(rule: str, start_s: int, end_s: int | None, value: float = 12.5) -> Alert:
    return Alert(rule, "contamination_share", at(start_s), None if end_s is None else at(end_s), value, 10.0, "%", 300.0,
                 f"contamination share {value} %")


def stream() -> list[TrackEvent]:
    out = []
    for k in range(360):
        t = 10 * k + 5
        cls = "film" if 1200 <= t < 2100 and k % 3 == 0 else "pet_bottle"
        out.append(TrackEvent(at(t), k, k, k, cls, 0.9, 90.0, 60.0, 0.0, 0.0, 4, "eject", (k,), "executed"))
    return out


def test_alerts_are_kept_per_line_and_updated_in_place(pg_url: str, pg_server: PgServer) -> None:
    with open_store(pg_url, line="line-a") as a, open_store(pg_url, line="line-b") as b:
        a.put_alerts([alert("contamination_share", 100, None)])
        b.put_alerts([alert("contamination_share", 100, 200, value=50.0)])  # same rule and start, other line
        a.put_alerts([alert("contamination_share", 100, 400, value=20.0)])  # line-a's alert ended: updated
        assert a.alerts() == [alert("contamination_share", 100, 400, value=20.0)]
        assert b.alerts() == [alert("contamination_share", 100, 200, value=50.0)]
        assert a.alerts(since_ns=at(400)) == [] and a.alerts(until_ns=at(101)) == a.alerts()
        a.put_alerts([alert("x", 500, None)])
        assert [x.rule for x in a.alerts(active_only=True)] == ["x"] and b.alerts(active_only=True) == []
    db = pg_url.rsplit("/", 1)[1]
    assert pg_server.psql("SELECT count(*) FROM sorter_alerts", db) == "3"


def test_monitor_on_postgres_and_the_report_lists_its_alert(pg_url: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = AlertsConfig.model_validate({"rules": [{"kind": "contamination_share", "above_pct": 10, "window_min": 5}]})
    events = stream()
    with open_store(pg_url, line="west-2") as store:
        mon = AlertMonitor(store, cfg, targets=("pet_bottle",), t_begin_ns=T0, lag_s=0)
        for t_now in range(600, 3601, 600):
            store.add_batch([e for e in events if at(t_now - 600) <= e.t_wall_ns < at(t_now)])
            mon.poll(at(t_now))
        (stored,) = store.alerts()
    assert (stored.t_start_ns, stored.t_end_ns, stored.threshold) == (at(1320), at(2340), 10.0)
    assert stored.value == pytest.approx(100 / 3)
    capsys.readouterr()
    args = ["report", "--set", f"analytics.store={pg_url}", "--set", "line.name=west-2", "--since", "2027-01-15T08:00",
            "--until", "2027-01-15T09:00", "--format", "csv", "--table", "alerts"]
    assert cli_main(args) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert row["line"] == "west-2" and row["start"] == "2027-01-15T08:22:00+00:00" and row["end"] == "2027-01-15T08:39:00+00:00"


def test_a_user_without_create_rights_still_writes_events(pg_url: str, pg_server: PgServer,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    db = pg_url.rsplit("/", 1)[1]
    with open_store(pg_url, line="l"):
        pass  # the owner creates the tables
    pg_server.psql("DROP TABLE sorter_alerts", db)  # as made by a sorter from before alerts
    pg_server.psql("DROP ROLE IF EXISTS writer; CREATE ROLE writer LOGIN")
    pg_server.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC", db)
    pg_server.psql("GRANT SELECT, INSERT ON sorter_events, sorter_schema_version TO writer;"
                   " GRANT USAGE ON SEQUENCE sorter_events_id_seq TO writer", db)
    with open_store(pg_server.url(user="writer", dbname=db), line="l") as s:
        assert "cannot create the alerts table" in caplog.text
        s.add_batch(stream()[:3])
        assert s.count() == 3
        with pytest.raises(EventStoreError, match="sorter_alerts"):
            s.alerts()
    with open_store(pg_url, line="l") as owner:  # the owner's next open adds the table
        assert owner.alerts() == [] and owner.count() == 3
