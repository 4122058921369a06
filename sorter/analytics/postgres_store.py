"""PostgreSQL event store, for plants that gather every line's events in one central database.

One table, ``sorter_events``, holds the events of every line that writes to the
database; the ``line`` column (``line.name`` of each line's config) keeps them
apart, and every query of a :class:`PostgresEventStore` sees only its own line.
A ``sorter_schema_version`` table records the schema, as in the SQLite store.
``sorter_alerts`` records the alerts of ``analytics.alerts`` per line; it is
created when missing (also beside tables made before it existed) where the user
may create tables, and an older sorter ignores it.

Each :meth:`PostgresEventStore.add_batch` is one transaction carried by ``COPY``
(one round trip for the whole batch), so a batch is stored whole or not at all.
A connection that breaks (server restart, network cut) is dropped and opened
again on the next call; the :class:`sorter.analytics.writer.EventWriter`
retries the batch meanwhile, so an outage shorter than ``analytics.retry_for_s``
loses nothing.

The driver is ``psycopg`` (version 3; ``pip install 'sorter[postgres]'``), imported
only when a PostgreSQL store is opened. Passwords never appear in messages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from sorter.analytics.alert_sql import ALERT_COLUMNS, alert_from_row, alert_row, alert_where
from sorter.analytics.alerts import Alert
from sorter.analytics.events import COLUMNS, TrackEvent
from sorter.analytics.store import (
    EventStoreError,
    EventStoreFullError,
    EventStoreReadOnlyError,
    EventStoreSchemaError,
    EventStoreUrlError,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_COLS = ", ".join(COLUMNS)
_LOCK_KEY = 0x736F72746572  # pg_advisory_xact_lock key ("sorter"): one schema creation at a time across lines
_CREATE = (
    "CREATE TABLE IF NOT EXISTS sorter_schema_version (version INTEGER NOT NULL, applied_utc TIMESTAMPTZ NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS sorter_events (id BIGSERIAL PRIMARY KEY, line TEXT NOT NULL, t_wall_ns BIGINT NOT NULL,"
    " t_first_seen_ns BIGINT NOT NULL, t_last_seen_ns BIGINT NOT NULL, track_id BIGINT NOT NULL, class_name TEXT NOT NULL,"
    " confidence DOUBLE PRECISION NOT NULL, length_mm DOUBLE PRECISION NOT NULL, width_mm DOUBLE PRECISION NOT NULL,"
    " x_mm DOUBLE PRECISION NOT NULL, u_mm DOUBLE PRECISION NOT NULL, n_detections INTEGER NOT NULL, decision TEXT NOT NULL,"
    " command_ids TEXT NOT NULL, outcome TEXT)",
    "CREATE INDEX IF NOT EXISTS sorter_events_line_t_wall_ns ON sorter_events (line, t_wall_ns)",
    "CREATE INDEX IF NOT EXISTS sorter_events_line_class_t_wall_ns ON sorter_events (line, class_name, t_wall_ns)",
)
_ALERT_COLS = ", ".join(ALERT_COLUMNS)
_CREATE_ALERTS = (
    "CREATE TABLE IF NOT EXISTS sorter_alerts (id BIGSERIAL PRIMARY KEY, line TEXT NOT NULL, rule TEXT NOT NULL,"
    " kind TEXT NOT NULL, t_start_ns BIGINT NOT NULL, t_end_ns BIGINT, value DOUBLE PRECISION NOT NULL,"
    " threshold DOUBLE PRECISION NOT NULL, unit TEXT NOT NULL, window_s DOUBLE PRECISION NOT NULL, message TEXT NOT NULL,"
    " UNIQUE (line, rule, t_start_ns))",
    "CREATE INDEX IF NOT EXISTS sorter_alerts_line_t_start_ns ON sorter_alerts (line, t_start_ns)",
)
_UPSERT_ALERT = (
    f"INSERT INTO sorter_alerts (line, {_ALERT_COLS}) VALUES ({', '.join(['%s'] * (len(ALERT_COLUMNS) + 1))}) "
    "ON CONFLICT (line, rule, t_start_ns) DO UPDATE SET t_end_ns = EXCLUDED.t_end_ns, value = EXCLUDED.value, "
    "threshold = EXCLUDED.threshold, unit = EXCLUDED.unit, window_s = EXCLUDED.window_s, message = EXCLUDED.message"
)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as e:
        raise EventStoreUrlError(
            "a PostgreSQL event store needs the Python package 'psycopg' (version 3): "
            "pip install 'sorter[postgres]' (or 'psycopg[binary]'), or use an SQLite path"
        ) from e
    return psycopg


def describe_url(url: str) -> str:
    """``url`` without its password: ``postgresql://user@host:port/dbname``, for messages and logs."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(url)
    except Exception:  # not parseable, or no driver: show the scheme only, never the rest (it may hold a password)
        return url.split("://", 1)[0] + "://..."
    user = f"{d['user']}@" if d.get("user") else ""
    port = f":{d['port']}" if d.get("port") else ""
    return f"postgresql://{user}{d.get('host') or 'localhost'}{port}/{d.get('dbname') or ''}"


def translate_error(exc: BaseException, where: str) -> EventStoreError:
    """Map a psycopg error to an :class:`EventStoreError` that names the server and says what to do."""
    psycopg = _psycopg()
    state = str(getattr(getattr(exc, "diag", None), "sqlstate", "") or getattr(exc, "sqlstate", "") or "")
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if state == "53100":  # disk_full
        return EventStoreFullError(
            f"event store {where}: the database server's disk is full ({msg}); free space on the server"
        )
    if state in ("42501", "25006"):  # insufficient_privilege, read_only_sql_transaction
        return EventStoreReadOnlyError(
            f"event store {where}: not allowed to write ({msg}); grant the user CREATE on the schema and INSERT/SELECT on "
            "sorter_events and sorter_alerts and USAGE on their id sequences (or let a database owner create the tables once), "
            "or connect to a primary, not a read-only replica"
        )
    # a refused connection carries no SQLSTATE in psycopg, only the server's FATAL text
    if state.startswith("28") or "password authentication failed" in msg or "pg_hba.conf" in msg or (
        "role " in msg and "does not exist" in msg
    ):
        return EventStoreError(
            f"event store {where}: login refused ({msg}); check the user and password (PGPASSWORD or ~/.pgpass) "
            "and that pg_hba.conf admits this box"
        )
    if state == "3D000" or ("database " in msg and "does not exist" in msg):
        return EventStoreError(f"event store {where}: the database does not exist ({msg}); create it (createdb) or fix the URL")
    if isinstance(exc, psycopg.OperationalError):
        return EventStoreError(
            f"event store {where}: cannot reach the database server ({msg}); check that PostgreSQL is running and "
            "reachable from this box (host, port, firewall, pg_hba.conf)"
        )
    return EventStoreError(f"event store {where}: {msg} ({type(exc).__name__}{', SQLSTATE ' + state if state else ''})")


class PostgresEventStore:
    """Event store in a PostgreSQL database, shared by lines. Thread-safe: one connection, serialised by a lock.

    Args:
        url: a libpq URL, ``postgresql://user[:password]@host[:port]/dbname[?options]``.
        line: this line's name; rows are written with it and queries return only its rows.
        connect_timeout_s: how long opening a connection may take (s) before it fails.

    Raises:
        EventStoreError: (a subclass naming the cause) the server cannot be reached or the store cannot be used.
        EventStoreUrlError: ``psycopg`` is not installed.
    """

    def __init__(self, url: str, *, line: str = "line", connect_timeout_s: float = 5.0) -> None:
        self._psycopg = _psycopg()
        if not line:
            raise EventStoreError("a PostgreSQL event store needs a non-empty line name (line.name in the config)")
        self.url, self.line = url, line
        self.where = describe_url(url)
        self._timeout_s = max(1, round(connect_timeout_s))
        self._lock = threading.Lock()
        self._conn: Any = None
        self._closed = False
        with self._lock:
            self._connect()

    # ------------------------------------------------------------------ connection

    def _connect(self) -> Any:
        """Open the connection and check or create the schema. Caller holds the lock."""
        psycopg = self._psycopg
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=self._timeout_s, application_name=f"sorter {self.line}"
            )  # autocommit: every transaction is an explicit conn.transaction() block, none left open
        except psycopg.Error as e:
            raise translate_error(e, self.where) from e
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                exists = conn.execute(
                    "SELECT to_regclass('sorter_events') IS NOT NULL AND to_regclass('sorter_schema_version') IS NOT NULL"
                ).fetchone()[0]
                if not exists:  # creating needs CREATE on the schema; a writer-only user can use tables made by the owner
                    for statement in _CREATE:
                        conn.execute(statement)
                version = conn.execute("SELECT MAX(version) FROM sorter_schema_version").fetchone()[0]
                if version is None:
                    conn.execute("INSERT INTO sorter_schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
                    log.info("created event store tables in %s (schema version %d)", self.where, SCHEMA_VERSION)
                elif int(version) > SCHEMA_VERSION:
                    raise EventStoreSchemaError(
                        f"event store {self.where} has schema version {version}, newer than this sorter understands "
                        f"({SCHEMA_VERSION}); upgrade the sorter on this line"
                    )
                if not conn.execute("SELECT to_regclass('sorter_alerts') IS NOT NULL").fetchone()[0]:
                    self._create_alerts(conn)
        except psycopg.Error as e:
            conn.close()
            raise translate_error(e, self.where) from e
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _create_alerts(self, conn: Any) -> None:
        """Create ``sorter_alerts``; a user without CREATE rights goes on without it (events matter more than alerts)."""
        try:
            with conn.transaction():  # a savepoint: a refusal must not undo the schema check around it
                for statement in _CREATE_ALERTS:
                    conn.execute(statement)
        except self._psycopg.errors.InsufficientPrivilege as e:
            log.warning("event store %s: cannot create the alerts table (%s); alerts are not recorded until a database "
                        "owner opens the store once", self.where, " ".join(str(e).split()))

    def _live(self) -> Any:
        """The open connection, reopened if it broke. Caller holds the lock."""
        if self._closed:
            raise EventStoreError(f"event store {self.where} is closed; open it again")
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                log.warning("event store %s: connection lost; reconnecting", self.where)
                self._conn.close()
                self._conn = None
            return self._connect()
        return self._conn

    def _failed(self, e: BaseException) -> EventStoreError:
        """Translate ``e``; drop the connection when it can no longer be used. Caller holds the lock."""
        if self._conn is not None and (self._conn.broken or isinstance(e, self._psycopg.OperationalError)):
            self._conn.close()
            self._conn = None
        return translate_error(e, self.where)

    # ------------------------------------------------------------------ writing and reading

    def add_batch(self, events: Iterable[TrackEvent]) -> None:
        """Append ``events`` in one transaction (``COPY``): all of them are stored, or (on error) none.

        Raises:
            EventStoreError: the server is unreachable, full or refuses the write; nothing of the batch was stored.
        """
        rows = [(self.line, *e.to_row()) for e in events]
        if not rows:
            return
        with self._lock:
            conn = self._live()
            try:
                with conn.transaction(), conn.cursor() as cur, cur.copy(f"COPY sorter_events (line, {_COLS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            except self._psycopg.Error as e:
                raise self._failed(e) from e

    def _query(self, sql: str, params: list[Any]) -> list[Any]:
        with self._lock:
            conn = self._live()
            try:
                with conn.transaction():
                    return list(conn.execute(sql, params).fetchall())
            except self._psycopg.Error as e:
                raise self._failed(e) from e

    def _where(self, since_ns: int | None, until_ns: int | None, class_name: str | None = None) -> tuple[str, list[Any]]:
        clauses: list[str] = ["line = %s"]
        params: list[Any] = [self.line]
        for sql, value in (("t_wall_ns >= %s", since_ns), ("t_wall_ns < %s", until_ns), ("class_name = %s", class_name)):
            if value is not None:
                clauses.append(sql)
                params.append(value)
        return " WHERE " + " AND ".join(clauses), params

    def events(
        self, since_ns: int | None = None, until_ns: int | None = None, limit: int | None = None, *, class_name: str | None = None
    ) -> list[TrackEvent]:
        """This line's events with ``since_ns <= t_wall_ns < until_ns`` (wall-clock ns; None = open end), oldest first."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}")
        where, params = self._where(since_ns, until_ns, class_name)
        sql = f"SELECT {_COLS} FROM sorter_events{where} ORDER BY t_wall_ns, id"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        return [TrackEvent.from_row(r) for r in self._query(sql, params)]

    def count(self) -> int:
        """Number of this line's stored events."""
        where, params = self._where(None, None)
        return int(self._query(f"SELECT COUNT(*) FROM sorter_events{where}", params)[0][0])

    def counts_by_class(self, since_ns: int | None = None, until_ns: int | None = None) -> dict[str, int]:
        """Number of this line's events per class in ``[since_ns, until_ns)``, classes sorted."""
        where, params = self._where(since_ns, until_ns)
        sql = f"SELECT class_name, COUNT(*) FROM sorter_events{where} GROUP BY class_name ORDER BY class_name"
        rows = self._query(sql, params)
        return {str(name): int(n) for name, n in rows}

    def put_alerts(self, alerts: Iterable[Alert]) -> None:
        """Record this line's ``alerts`` in one transaction: a new alert is added, a known one (rule and start) updated.

        Raises:
            EventStoreError: nothing was written (e.g. no ``sorter_alerts`` table and no right to create it).
        """
        rows = [(self.line, *alert_row(a)) for a in alerts]
        if not rows:
            return
        with self._lock:
            conn = self._live()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(_UPSERT_ALERT, rows)
            except self._psycopg.Error as e:
                raise self._failed(e) from e

    def alerts(self, since_ns: int | None = None, until_ns: int | None = None, *, active_only: bool = False) -> list[Alert]:
        """This line's alerts that overlap ``[since_ns, until_ns)`` (None = open end), oldest first."""
        where, params = alert_where(since_ns, until_ns, active_only, "%s")
        where = (where + " AND line = %s") if where else " WHERE line = %s"
        sql = f"SELECT {_ALERT_COLS} FROM sorter_alerts{where} ORDER BY t_start_ns, rule"
        return [alert_from_row(r) for r in self._query(sql, [*params, self.line])]

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PostgresEventStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
