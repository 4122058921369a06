"""Event store: real SQLite files under tmp_path, the batching writer with fake and real stores, and every error message."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sorter.analytics import (
    EventStoreCorruptError,
    EventStoreError,
    EventStoreFullError,
    EventStoreLocationError,
    EventStoreReadOnlyError,
    EventStoreSchemaError,
    EventStoreUrlError,
    EventWriter,
    SqliteEventStore,
    TrackEvent,
    open_store,
)
from sorter.clock import ManualClock
from sorter.errors import ConfigError, SorterError

T0_NS = 1_750_000_000_000_000_000  # a wall-clock instant in 2025


def ev(i: int, t_wall_ns: int | None = None, class_name: str = "PET", outcome: str | None = "executed") -> TrackEvent:
    return TrackEvent(
        t_wall_ns=T0_NS + i * 1_000_000 if t_wall_ns is None else t_wall_ns,
        t_first_seen_ns=10_000 + i,
        t_last_seen_ns=20_000 + i,
        track_id=i,
        class_name=class_name,
        confidence=0.5 + (i % 5) / 10,
        length_mm=100.0 + i,
        width_mm=50.25,
        x_mm=-12.5,
        u_mm=-300.125 - i,
        n_detections=3 + i % 4,
        decision="eject" if i % 2 else "pass",
        command_ids=(i, i + 1000) if i % 2 else (),
        outcome=outcome,
    )


# --- TrackEvent and SqliteEventStore -------------------------------------------------------------------------------


def test_row_round_trip_keeps_every_field() -> None:
    for e in (ev(1), ev(2, outcome=None), ev(3, class_name="HDPE natural ü")):
        assert TrackEvent.from_row(e.to_row()) == e
    assert ev(1).to_row()[12] == "1,1001" and ev(2).to_row()[12] == ""
    with pytest.raises(ValueError, match="14 values"):
        TrackEvent.from_row((1, 2, 3))


def test_store_round_trip_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    written = [ev(i, outcome=None if i == 3 else "late") for i in range(10)]
    with SqliteEventStore(path) as store:
        store.add_batch(written[:4])
        store.add_batch(written[4:])
        store.add_batch([])
    with SqliteEventStore(path) as store:
        assert store.events() == written
        assert store.count() == 10
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 1
        indexed = {r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
        assert any("(t_wall_ns)" in s for s in indexed) and any("class_name" in s for s in indexed)


def test_queries_by_time_window_class_and_limit(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    classes = ["PET", "HDPE", "PET", "alu", "PET", "HDPE"]
    # inserted out of time order: queries must sort by wall time, not by insertion
    order = [5, 0, 3, 1, 4, 2]
    store.add_batch(ev(i, t_wall_ns=T0_NS + i * 1000, class_name=classes[i]) for i in order)
    assert [e.track_id for e in store.events()] == [0, 1, 2, 3, 4, 5]
    assert [e.track_id for e in store.events(since_ns=T0_NS + 2000)] == [2, 3, 4, 5]  # inclusive lower bound
    assert [e.track_id for e in store.events(until_ns=T0_NS + 2000)] == [0, 1]  # exclusive upper bound
    assert [e.track_id for e in store.events(T0_NS + 1000, T0_NS + 5000, limit=2)] == [1, 2]
    assert store.events(limit=0) == []
    assert [e.track_id for e in store.events(class_name="PET")] == [0, 2, 4]
    assert store.counts_by_class() == {"HDPE": 2, "PET": 3, "alu": 1}
    assert store.counts_by_class(since_ns=T0_NS + 1000, until_ns=T0_NS + 4000) == {"HDPE": 1, "PET": 1, "alu": 1}
    assert store.counts_by_class(since_ns=T0_NS + 10_000) == {}
    with pytest.raises(ValueError):
        store.events(limit=-1)
    store.close()
    store.close()  # idempotent
    with pytest.raises(EventStoreError, match="closed"):
        store.count()


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SqliteEventStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (7)")
    with pytest.raises(EventStoreSchemaError, match=r"schema version 7, newer than this sorter understands \(1\); upgrade"):
        SqliteEventStore(path)
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 7]


def test_missing_directory_not_a_database_and_foreign_database(tmp_path: Path) -> None:
    with pytest.raises(EventStoreLocationError, match=r"does not exist; create it \(mkdir -p .*nowhere\)"):
        SqliteEventStore(tmp_path / "nowhere" / "events.db")
    with pytest.raises(EventStoreLocationError, match="is a directory"):
        SqliteEventStore(tmp_path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite\n" * 100)
    with pytest.raises(EventStoreCorruptError, match=r"not an SQLite database.*move it aside"):
        SqliteEventStore(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (x)")
    with pytest.raises(EventStoreCorruptError, match=r"not a sorter event store \(tables: invoices\)"):
        SqliteEventStore(other)


@contextmanager
def _unprivileged() -> Iterator[None]:
    """Root ignores file modes: act as 'nobody' (effective ids only, restored after) so read-only really is read-only."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def open_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory that the (possibly unprivileged) test user can reach: tmp_path is private to root when run as root."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(prefix="sorter-test-") as d:
        os.chmod(d, 0o755)
        yield Path(d)


def test_read_only_directory_and_file_say_what_to_do(open_dir: Path) -> None:
    ro_dir = open_dir / "ro"
    ro_dir.mkdir()
    ro_dir.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    old = open_dir / "old"  # an existing store, later made read-only
    old.mkdir(mode=0o777)
    old.chmod(0o777)
    SqliteEventStore(old / "events.db").close()
    (old / "events.db").chmod(0o444)
    try:
        with _unprivileged():
            with pytest.raises(EventStoreReadOnlyError) as new_in_ro:
                SqliteEventStore(ro_dir / "events.db")
            with pytest.raises(EventStoreReadOnlyError) as ro_file:
                SqliteEventStore(old / "events.db")
    finally:
        ro_dir.chmod(0o755)
    for err in (new_in_ro.value, ro_file.value):
        assert isinstance(err, SorterError)
        assert "needs write access to the file and to its directory" in str(err)
        assert "give the service user write access" in str(err)
    assert str(ro_dir) in str(new_in_ro.value)


def test_disk_full_is_reported_and_batch_is_all_or_nothing(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    store.add_batch([ev(0)])
    conn = store._conn
    assert conn is not None
    # SQLITE_FULL for real: cap the file at its current size (max_page_count), as a full disk would
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(EventStoreFullError, match=r"disk is full.*free space"):
        store.add_batch([ev(i) for i in range(1, 2000)])
    assert store.count() == 1  # nothing of the failed batch was stored
    conn.execute("PRAGMA max_page_count = 1073741823")
    store.add_batch([ev(1)])  # the connection is still usable afterwards
    assert store.count() == 2


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = open_store(str(tmp_path / "a.db"))
    assert isinstance(s, SqliteEventStore) and s.path == tmp_path / "a.db"
    s.close()
    s = open_store(f"sqlite:///{tmp_path}/b.db")  # absolute: four slashes in all
    assert isinstance(s, SqliteEventStore) and s.path == tmp_path / "b.db"
    s.close()
    monkeypatch.chdir(tmp_path)
    s = open_store("sqlite:///rel.db")
    assert isinstance(s, SqliteEventStore) and s.path == tmp_path / "rel.db"
    s.close()
    monkeypatch.setitem(sys.modules, "psycopg", None)  # a box without the PostgreSQL driver: import psycopg fails
    with pytest.raises(EventStoreUrlError, match=r"needs the Python package 'psycopg'.*sorter\[postgres\]") as pg:
        open_store("postgresql://sorter@db/events")
    assert isinstance(pg.value, ConfigError)
    with pytest.raises(EventStoreUrlError, match=r"unsupported location.*sqlite:///.*postgresql://"):
        open_store("mysql://x/y")
    with pytest.raises(EventStoreUrlError, match="sqlite:///relative"):
        open_store("sqlite://")


# --- EventWriter -----------------------------------------------------------------------------------------------------


class RecordingStore:
    """Fake sink: records batch sizes; optionally blocks on `gate` or fails the first `fail_times` writes."""

    def __init__(self, fail_times: int = 0, exc: Exception | None = None) -> None:
        self.batches: list[list[TrackEvent]] = []
        self.fail_times = fail_times
        self.exc = exc or EventStoreFullError("disk is full")
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.changed = threading.Condition()

    def add_batch(self, events: Iterable[TrackEvent]) -> None:
        batch = list(events)
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5.0)
        if self.fail_times > 0:
            self.fail_times -= 1
            raise self.exc
        with self.changed:
            self.batches.append(batch)
            self.changed.notify_all()

    def wait_for(self, n_batches: int, timeout_s: float = 2.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.batches) >= n_batches, timeout_s)


def test_writer_batches_by_size_then_flushes_the_rest() -> None:
    store = RecordingStore()
    w = EventWriter(store, batch_size=4, flush_interval_s=3600.0)  # the interval never expires here
    assert all(w.submit(ev(i)) for i in range(10))
    assert store.wait_for(2)
    time.sleep(0.05)  # nothing more may be written: 2 events wait for the interval
    assert [len(b) for b in store.batches] == [4, 4] and w.queued == 2 and w.written == 8
    assert w.flush(1.0)
    assert [len(b) for b in store.batches] == [4, 4, 2]
    assert [e.track_id for b in store.batches for e in b] == list(range(10))
    assert w.close(1.0) and w.written == 10 and w.dropped == 0


def test_writer_flushes_after_interval_by_injected_clock() -> None:
    clock = ManualClock(1_000)
    store = RecordingStore()
    w = EventWriter(store, batch_size=100, flush_interval_s=2.0, clock=clock)
    w.submit(ev(0))
    clock.advance_ns(1_900_000_000)
    w.submit(ev(1))
    assert not store.wait_for(1, timeout_s=0.25)  # 1.9 s of 2 s: not yet
    clock.advance_ns(100_000_000)
    assert store.wait_for(1, timeout_s=1.0)  # the oldest event has waited 2.0 s
    assert [e.track_id for e in store.batches[0]] == [0, 1]
    w.close()


def test_full_queue_drops_counts_and_never_blocks() -> None:
    store = RecordingStore()
    store.gate = threading.Event()
    w = EventWriter(store, batch_size=2, flush_interval_s=3600.0, max_queue=3)
    w.submit(ev(0))
    w.submit(ev(1))
    assert store.entered.wait(2.0)  # the writer thread is now stuck inside add_batch with events 0 and 1
    t = time.perf_counter()
    results = [w.submit(ev(i)) for i in range(2, 7)]
    assert time.perf_counter() - t < 0.05
    assert results == [True, True, True, False, False]
    assert w.dropped == 2 and w.queued == 3
    store.gate.set()
    assert w.close(1.0)
    assert w.written == 5 and w.dropped == 2
    assert not w.submit(ev(99)) and w.dropped == 3  # after close: refused and counted, not raised


def test_close_drains_a_real_store_within_a_second(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    w = EventWriter(store, batch_size=256, flush_interval_s=3600.0)
    n = 20_000
    for i in range(n):
        w.submit(ev(i))
    # behaviour, not speed (the time to drain is scripts/bench_event_store.py's figure): close writes the whole
    # queue and stops the thread when its deadline allows
    assert w.close(timeout_s=60.0)
    assert w.written == n and store.count() == n
    assert not w._thread.is_alive()
    store.close()


def test_failing_store_keeps_writer_alive_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sorter.analytics.writer")
    store = RecordingStore(fail_times=2)
    w = EventWriter(store, batch_size=2, flush_interval_s=3600.0, max_retries=3, retry_backoff_s=0.001)
    w.submit(ev(0))
    w.submit(ev(1))
    assert w.flush(2.0)
    assert w.write_errors == 2 and w.written == 2 and w.lost == 0
    assert w.last_error is not None and "EventStoreFullError: disk is full" in w.last_error
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # logged once per kind of error, not once per attempt

    store.fail_times = 10**6  # now it never recovers: the batch is given up after 1 + 3 attempts
    store.exc = OSError("I/O error")
    assert w.submit(ev(2)) and w.submit(ev(3))
    assert w.flush(2.0)
    assert w.write_errors == 2 + 4 and w.lost == 2 and w.written == 2
    assert w.last_error == "OSError: I/O error"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert sum("write failed" in m for m in errors) == 2  # one per kind: EventStoreFullError, OSError
    assert sum("gave up 2 events after 4 attempts" in m for m in errors) == 1

    store.fail_times = 0  # the disk is back: the writer is still alive and writes again
    assert w.submit(ev(4)) and w.submit(ev(5))
    assert w.flush(2.0) and w.written == 4
    assert w.close(1.0)


def test_close_gives_up_in_time_on_a_stuck_store() -> None:
    store = RecordingStore()
    store.gate = threading.Event()  # add_batch hangs (e.g. a dead network disk)
    w = EventWriter(store, batch_size=1, flush_interval_s=3600.0)
    w.submit(ev(0))
    assert store.entered.wait(2.0)
    t = time.perf_counter()
    assert not w.close(timeout_s=0.2)
    assert 0.15 < time.perf_counter() - t < 0.5
    assert not w.flush(timeout_s=0.05)
    store.gate.set()
