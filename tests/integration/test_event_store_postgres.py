"""The PostgreSQL event store against a real PostgreSQL server: round trip, lines kept apart, outages, refusals, the line."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from conftest import PgServer  # tests/integration/conftest.py (pytest puts its folder on sys.path)

from sorter.analytics import EventStoreError, EventStoreReadOnlyError, EventWriter, TrackEvent, open_store
from sorter.analytics.postgres_store import PostgresEventStore, describe_url
from sorter.cli import main as cli_main

T0_NS = 1_750_000_000_000_000_000


def ev(i: int, class_name: str = "pet_bottle", outcome: str | None = "executed") -> TrackEvent:
    return TrackEvent(
        t_wall_ns=T0_NS + i * 1_000_000, t_first_seen_ns=10_000 + i, t_last_seen_ns=20_000 + i, track_id=i,
        class_name=class_name, confidence=0.5 + (i % 5) / 10, length_mm=100.0 + i, width_mm=50.25, x_mm=-12.5,
        u_mm=-300.125 - i, n_detections=3 + i % 4, decision="eject" if i % 2 else "pass",
        command_ids=(i, i + 1000) if i % 2 else (), outcome=outcome,
    )


def test_round_trip_windows_and_classes(pg_url: str) -> None:
    events = [ev(i, class_name=("pet_bottle", "alu_can", "film")[i % 3], outcome=None if i == 4 else "executed")
              for i in range(50)]
    with open_store(pg_url, line="line-a") as store:
        assert isinstance(store, PostgresEventStore)
        store.add_batch(events[:30])
        store.add_batch(events[30:])
        store.add_batch([])
        assert store.count() == 50
        assert store.events() == events  # every field, command ids and a NULL outcome included
        assert store.events(since_ns=events[10].t_wall_ns, until_ns=events[20].t_wall_ns) == events[10:20]
        assert store.events(limit=3) == events[:3]
        assert store.events(class_name="film") == [e for e in events if e.class_name == "film"]
        assert store.counts_by_class() == {"alu_can": 17, "film": 16, "pet_bottle": 17}
        assert store.counts_by_class(until_ns=events[3].t_wall_ns) == {"alu_can": 1, "film": 1, "pet_bottle": 1}
    with open_store(pg_url, line="line-a") as again:  # reopening finds the schema and the rows
        assert again.count() == 50


def test_lines_sharing_a_database_see_only_their_own_events(pg_url: str, pg_server: PgServer) -> None:
    stores: list[PostgresEventStore] = []
    errors: list[BaseException] = []

    def open_one(name: str) -> None:  # first opens race to create the schema: the advisory lock serialises them
        try:
            stores.append(PostgresEventStore(pg_url, line=name))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_one, args=(f"line-{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(stores) == 4
    for k, s in enumerate(sorted(stores, key=lambda s: s.line)):
        s.add_batch([ev(i) for i in range(k + 1)])
    for k, s in enumerate(sorted(stores, key=lambda s: s.line)):
        assert s.count() == k + 1 and len(s.events()) == k + 1
        s.close()
    db = pg_url.rsplit("/", 1)[1]
    assert pg_server.psql("SELECT count(*) FROM sorter_events", db) == "10"
    assert pg_server.psql("SELECT count(*) FROM sorter_schema_version", db) == "1"


def test_unreachable_server_is_named_without_its_password() -> None:
    with pytest.raises(EventStoreError, match=r"cannot reach the database server.*PostgreSQL is running") as exc:
        open_store("postgresql://plant:s3cret@127.0.0.1:9/events")
    assert "s3cret" not in str(exc.value) and "127.0.0.1:9/events" in str(exc.value)
    assert describe_url("postgresql://plant:s3cret@db.local:5433/events") == "postgresql://plant@db.local:5433/events"


def test_missing_database_and_a_user_without_rights_get_their_fix(pg_url: str, pg_server: PgServer) -> None:
    with pytest.raises(EventStoreError, match=r"database does not exist.*createdb"):
        open_store(pg_server.url(dbname="no_such_db"))
    db = pg_url.rsplit("/", 1)[1]
    pg_server.psql("DROP ROLE IF EXISTS viewer; CREATE ROLE viewer LOGIN")
    pg_server.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC", db)
    with pytest.raises(EventStoreReadOnlyError, match=r"not allowed to write.*GRANT|not allowed to write.*grant"):
        open_store(pg_server.url(user="viewer", dbname=db))
    # once the owner made the tables, a user with INSERT/SELECT (and the sequence) writes without CREATE rights
    open_store(pg_url).close()
    pg_server.psql("GRANT SELECT, INSERT ON sorter_events, sorter_schema_version TO viewer;"
                   " GRANT USAGE ON SEQUENCE sorter_events_id_seq TO viewer", db)
    with open_store(pg_server.url(user="viewer", dbname=db), line="l") as s:
        s.add_batch([ev(1), ev(2)])
        assert s.count() == 2


def test_database_restart_loses_no_event(pg_url: str, pg_server: PgServer) -> None:
    store = open_store(pg_url, line="restart")
    writer = EventWriter(store, batch_size=10, flush_interval_s=0.05, retry_backoff_s=0.05, retry_for_s=30.0,
                         max_backoff_s=0.5)
    try:
        for i in range(20):
            writer.submit(ev(i))
        assert writer.flush(10.0) and writer.written == 20
        pg_server.stop("fast")  # the server goes away: connections break
        try:
            for i in range(20, 60):
                writer.submit(ev(i))
            deadline = time.monotonic() + 10
            while writer.write_errors == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert writer.write_errors > 0 and writer.last_error is not None and "cannot reach" in writer.last_error
        finally:
            pg_server.start()
        assert writer.flush(20.0)
        assert writer.written == 60 and writer.lost == 0 and writer.dropped == 0
        assert store.count() == 60
        assert [e.track_id for e in store.events()] == list(range(60))  # each once, in order
    finally:
        writer.close()
        store.close()


def test_line_writes_its_events_and_reports_from_postgres(pg_url: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.json"
    store = ["--set", f"analytics.store={pg_url}", "--set", "line.name=west-2"]
    rc = cli_main(["run", "--fast", "--duration", "15", "--quiet", "--summary", str(out), "--set", "detector.type=oracle",
                   *store])
    assert rc == 0
    s = json.loads(out.read_text())
    assert s["events"]["written"] == s["tracks_confirmed"] > 10 and s["events"]["lost"] == 0
    with open_store(pg_url, line="west-2") as pg:
        assert pg.count() == s["tracks_confirmed"]
        executed = sum(1 for e in pg.events() if e.decision == "eject" and e.outcome == "executed")
        assert executed == s["commands_executed"] > 0
    capsys.readouterr()
    csv_out = tmp_path / "r.csv"
    assert cli_main(["report", "--since", "1h", "--format", "csv", "--out", str(csv_out), *store]) == 0
    err = capsys.readouterr().err
    assert f"{s['tracks_confirmed']} objects" in err and "(line west-2)" in err
    assert csv_out.read_text().count("\n") > 1
    assert cli_main(["check", "--set", f"analytics.store={pg_url}"]) == 0
