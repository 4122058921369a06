"""SQLite event store: one file, WAL journal, one row per :class:`TrackEvent`.

Why these settings: in WAL mode a commit is one append to the ``-wal`` file and
readers (reports, ``sqlite3`` shell) never block the writer. ``synchronous=NORMAL``
skips the fsync per commit; a committed transaction still survives a crash or
``kill -9`` of the process (only a power cut can lose the last commits), and
the file is never corrupted. Each :meth:`SqliteEventStore.add_batch` is one
transaction, so a kill loses at most the batch being written, never half of it.

Every ``sqlite3`` failure is turned into an :class:`EventStoreError` whose
message names the file and says what to do.

An ``alerts`` table records the alerts of ``analytics.alerts`` (one row per
alert, updated when it worsens or ends). It is created when missing, also in a
store made before it existed; the schema version counts only changes an older
sorter could not live with, and an older sorter ignores the extra table.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from sorter.analytics.alert_sql import ALERT_COLUMNS, alert_from_row, alert_row, alert_where
from sorter.analytics.alerts import Alert
from sorter.analytics.events import COLUMNS, TrackEvent
from sorter.analytics.store import (
    EventStoreCorruptError,
    EventStoreError,
    EventStoreFullError,
    EventStoreLocationError,
    EventStoreReadOnlyError,
    EventStoreSchemaError,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_COLS = ", ".join(COLUMNS)
_INSERT = f"INSERT INTO events ({_COLS}) VALUES ({', '.join('?' * len(COLUMNS))})"
_CREATE = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_utc TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, t_wall_ns INTEGER NOT NULL, t_first_seen_ns INTEGER NOT NULL,"
    " t_last_seen_ns INTEGER NOT NULL, track_id INTEGER NOT NULL, class_name TEXT NOT NULL, confidence REAL NOT NULL,"
    " length_mm REAL NOT NULL, width_mm REAL NOT NULL, x_mm REAL NOT NULL, u_mm REAL NOT NULL, n_detections INTEGER NOT NULL,"
    " decision TEXT NOT NULL, command_ids TEXT NOT NULL, outcome TEXT)",
    "CREATE INDEX events_t_wall_ns ON events (t_wall_ns)",
    "CREATE INDEX events_class_t_wall_ns ON events (class_name, t_wall_ns)",
)
_ALERT_COLS = ", ".join(ALERT_COLUMNS)
_CREATE_ALERTS = (
    "CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, kind TEXT NOT NULL,"
    " t_start_ns INTEGER NOT NULL, t_end_ns INTEGER, value REAL NOT NULL, threshold REAL NOT NULL, unit TEXT NOT NULL,"
    " window_s REAL NOT NULL, message TEXT NOT NULL, UNIQUE (rule, t_start_ns))",
    "CREATE INDEX IF NOT EXISTS alerts_t_start_ns ON alerts (t_start_ns)",
)
_UPSERT_ALERT = (
    f"INSERT INTO alerts ({_ALERT_COLS}) VALUES ({', '.join('?' * len(ALERT_COLUMNS))}) ON CONFLICT (rule, t_start_ns) "
    "DO UPDATE SET t_end_ns = excluded.t_end_ns, value = excluded.value, threshold = excluded.threshold, "
    "unit = excluded.unit, window_s = excluded.window_s, message = excluded.message"
)


def _writable(p: Path) -> bool:
    """``os.access`` for the *effective* user (the one SQLite acts as), where the OS can tell."""
    return os.access(p, os.W_OK, effective_ids=os.access in os.supports_effective_ids)


def translate_error(exc: sqlite3.Error, path: Path) -> EventStoreError:
    """Map a ``sqlite3`` error on ``path`` to an :class:`EventStoreError` that says how to fix it."""
    name, msg = str(getattr(exc, "sqlite_errorname", "") or ""), str(exc)
    where = f"event store {path}"
    if name.startswith("SQLITE_FULL") or "disk is full" in msg:
        return EventStoreFullError(f"{where}: the disk is full ({msg}); free space on {path.parent} (df -h) or move the store")
    denied = name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM")) and (
        (path.exists() and not _writable(path)) or not _writable(path.parent)
    )
    if denied or name.startswith("SQLITE_READONLY") or "readonly" in msg:
        return EventStoreReadOnlyError(
            f"{where} is not writable ({msg}): SQLite needs write access to the file and to its directory {path.parent} "
            "(for the -wal and -shm files); give the service user write access (e.g. chown) or point analytics at a writable path"
        )
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in msg or "malformed" in msg:
        return EventStoreCorruptError(
            f"{path} is not an SQLite database or is damaged ({msg}); "
            "move it aside (a new store is then created) or use another path"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return EventStoreError(f"{where} is locked by another process ({msg}); stop the other writer or use another path")
    return EventStoreError(f"{where}: {msg} ({name or type(exc).__name__}); check the file, its directory and the disk")


class SqliteEventStore:
    """Event store in one SQLite file. Thread-safe: one connection, serialised by a lock.

    Args:
        path: the database file; created with its schema if missing. Its directory must exist.
        busy_timeout_s: how long a statement waits for another process's lock (s) before failing.

    Raises:
        EventStoreError: (a subclass naming the cause) the file cannot be opened or is not a usable store.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path).expanduser().absolute()
        if self.path.is_dir():
            raise EventStoreLocationError(f"event store {self.path} is a directory; name a file, e.g. {self.path / 'events.db'}")
        if not self.path.parent.is_dir():
            raise EventStoreLocationError(
                f"cannot create the event store {self.path}: the directory {self.path.parent} does not exist; "
                f"create it (mkdir -p {self.path.parent}) or point analytics at another path"
            )
        self._lock = threading.Lock()
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                str(self.path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise translate_error(e, self.path) from e
        try:
            self._init_schema(self._conn)
        except BaseException as e:
            self._conn.close()
            self._conn = None
            if isinstance(e, sqlite3.Error):
                raise translate_error(e, self.path) from e
            raise

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        if mode.lower() != "wal":
            raise EventStoreError(f"event store {self.path}: cannot use WAL (journal mode {mode}); put the store on a local disk")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_version" in tables:
                version = int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
                if version > SCHEMA_VERSION:
                    raise EventStoreSchemaError(
                        f"event store {self.path} has schema version {version}, newer than this sorter understands "
                        f"({SCHEMA_VERSION}); upgrade the sorter, or point analytics at another file (do not downgrade in place)"
                    )
                if version < 1 or "events" not in tables:
                    raise EventStoreCorruptError(f"{self.path} has a broken event-store schema (version {version}); move it away")
                conn.execute("DELETE FROM schema_version WHERE 0")  # writes nothing, but fails now on a read-only file
            elif tables - {"sqlite_sequence"}:
                raise EventStoreCorruptError(
                    f"{self.path} is an SQLite database but not a sorter event store (tables: {', '.join(sorted(tables))}); "
                    "use another path"
                )
            else:
                for statement in _CREATE:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                log.info("created event store %s (schema version %d)", self.path, SCHEMA_VERSION)
            for statement in _CREATE_ALERTS:  # also in stores made before alerts were recorded
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise EventStoreError(f"event store {self.path} is closed; open it again")
        return self._conn

    def add_batch(self, events: Iterable[TrackEvent]) -> None:
        """Append ``events`` in one transaction: all of them are stored, or (on error) none.

        Raises:
            EventStoreError: e.g. :class:`EventStoreFullError`; nothing of the batch was written.
        """
        self._write_all(_INSERT, [e.to_row() for e in events])

    def _write_all(self, sql: str, rows: list[Any]) -> None:
        """Run ``sql`` for every row in one transaction: all rows are written, or (on error) none."""
        if not rows:
            return
        with self._lock:
            conn = self._live()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(sql, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # SQLite may already have rolled back (e.g. on SQLITE_FULL)
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise translate_error(e, self.path) from e

    def _query(self, sql: str, params: list[Any]) -> list[Any]:
        with self._lock:
            try:
                return self._live().execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise translate_error(e, self.path) from e

    @staticmethod
    def _where(since_ns: int | None, until_ns: int | None, class_name: str | None = None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for sql, value in (("t_wall_ns >= ?", since_ns), ("t_wall_ns < ?", until_ns), ("class_name = ?", class_name)):
            if value is not None:
                clauses.append(sql)
                params.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def events(
        self, since_ns: int | None = None, until_ns: int | None = None, limit: int | None = None, *, class_name: str | None = None
    ) -> list[TrackEvent]:
        """Events with ``since_ns <= t_wall_ns < until_ns`` (wall-clock ns; None = open end), oldest first.

        Args:
            since_ns: inclusive lower bound on ``t_wall_ns``.
            until_ns: exclusive upper bound, so consecutive windows never count an event twice.
            limit: at most this many (the oldest); None for all.
            class_name: only events of this class.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}")
        where, params = self._where(since_ns, until_ns, class_name)
        sql = f"SELECT {_COLS} FROM events{where} ORDER BY t_wall_ns, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [TrackEvent.from_row(r) for r in self._query(sql, params)]

    def count(self) -> int:
        """Number of stored events."""
        return int(self._query("SELECT COUNT(*) FROM events", [])[0][0])

    def counts_by_class(self, since_ns: int | None = None, until_ns: int | None = None) -> dict[str, int]:
        """Number of events per class in the window ``[since_ns, until_ns)`` (wall-clock ns), classes sorted."""
        where, params = self._where(since_ns, until_ns)
        rows = self._query(f"SELECT class_name, COUNT(*) FROM events{where} GROUP BY class_name ORDER BY class_name", params)
        return {str(name): int(n) for name, n in rows}

    def put_alerts(self, alerts: Iterable[Alert]) -> None:
        """Record ``alerts`` in one transaction: a new alert is added, a known one (same rule and start) updated.

        Raises:
            EventStoreError: nothing of the batch was written.
        """
        self._write_all(_UPSERT_ALERT, [alert_row(a) for a in alerts])

    def alerts(self, since_ns: int | None = None, until_ns: int | None = None, *, active_only: bool = False) -> list[Alert]:
        """Alerts that overlap ``[since_ns, until_ns)`` (None = open end), oldest first; only open ones with ``active_only``."""
        clauses, params = alert_where(since_ns, until_ns, active_only, "?")
        sql = f"SELECT {_ALERT_COLS} FROM alerts{clauses} ORDER BY t_start_ns, rule"
        return [alert_from_row(r) for r in self._query(sql, params)]

    def close(self) -> None:
        """Close the file (SQLite checkpoints the WAL into it). Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SqliteEventStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
