"""The event store's interface, its errors, and :func:`open_store` (URL or path -> store).

Backends live in their own modules (``sqlite_store``, ``postgres_store``) and
are imported only by :func:`open_store`, so that importing this module costs
nothing and a missing driver fails when that backend is asked for, not before.

Supported locations::

    /var/lib/sorter/events.db           a plain path: SQLite
    sqlite:///events.db                 SQLite, relative path (SQLAlchemy convention: three slashes)
    sqlite:////var/lib/sorter/events.db SQLite, absolute path (four slashes)
    postgresql://user@host:5432/plant   PostgreSQL (also postgres://); rows carry the line's name
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from sorter.analytics.alerts import Alert
from sorter.analytics.events import TrackEvent
from sorter.errors import ConfigError, SorterError

SCHEMES: tuple[str, ...] = ("sqlite:///", "postgresql://")
_POSTGRES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class EventStoreError(SorterError):
    """The event store cannot be opened, read or written."""


class EventStoreLocationError(EventStoreError):
    """The store's directory does not exist, or its path is not a file."""


class EventStoreReadOnlyError(EventStoreError):
    """The store file or its directory is not writable."""


class EventStoreCorruptError(EventStoreError):
    """The file is not an SQLite database, not a sorter event store, or damaged."""


class EventStoreFullError(EventStoreError):
    """The disk holding the store is full."""


class EventStoreSchemaError(EventStoreError):
    """The store was written by a newer sorter (higher schema version)."""


class EventStoreUrlError(EventStoreError, ConfigError):
    """The store's URL names an unsupported or unbuilt backend (also a ConfigError, so ``sorter check`` reports it)."""


class EventSink(Protocol):
    """Where :class:`sorter.analytics.writer.EventWriter` puts its batches."""

    def add_batch(self, events: Iterable[TrackEvent]) -> None:
        """Store ``events`` in one transaction, or raise and store none."""
        ...


class EventStore(EventSink, Protocol):
    """A queryable event store. Times are wall-clock ns (``TrackEvent.t_wall_ns``), windows ``[since, until)``."""

    def events(self, since_ns: int | None = None, until_ns: int | None = None, limit: int | None = None) -> list[TrackEvent]:
        """Events in the window, oldest first, at most ``limit``."""
        ...

    def count(self) -> int:
        """Number of stored events."""
        ...

    def counts_by_class(self, since_ns: int | None = None, until_ns: int | None = None) -> dict[str, int]:
        """Number of events per class in the window."""
        ...

    def put_alerts(self, alerts: Iterable[Alert]) -> None:
        """Record alerts in one transaction: new ones added, known ones (same rule and start) updated."""
        ...

    def alerts(self, since_ns: int | None = None, until_ns: int | None = None, *, active_only: bool = False) -> list[Alert]:
        """Alerts overlapping the window, oldest first; only those still open with ``active_only``."""
        ...

    def close(self) -> None:
        """Release the store (idempotent)."""
        ...


def sqlite_path(url_or_path: str) -> Path | None:
    """The file of an SQLite store (``sqlite:///`` prefix removed); None for PostgreSQL."""
    text = url_or_path.strip()
    if is_postgres(text):
        return None
    return Path(text[len("sqlite:///") :] if text.lower().startswith("sqlite:///") else text).expanduser().absolute()


def check_free_space(url_or_path: str, min_free_mb: float) -> float | None:
    """Free MB on the disk of an SQLite store (None for PostgreSQL, whose disk is the server's).

    Raises:
        EventStoreFullError: less than ``min_free_mb`` is free; the message names the folder and the fix.
    """
    path = sqlite_path(url_or_path)
    if path is None or not path.parent.is_dir():
        return None
    free_mb = shutil.disk_usage(path.parent).free / 1e6
    if free_mb < min_free_mb:
        raise EventStoreFullError(
            f"event store {path}: only {free_mb:.0f} MB free on {path.parent} (analytics.min_free_mb = {min_free_mb:g}); "
            f"free space there (df -h {path.parent}), move the store to a bigger disk, or lower analytics.min_free_mb"
        )
    return free_mb


def describe_store(url_or_path: str) -> str:
    """The store's location for messages: the path, or the PostgreSQL URL without its password."""
    if is_postgres(url_or_path):
        from sorter.analytics.postgres_store import describe_url

        return describe_url(url_or_path.strip())
    return url_or_path


def is_postgres(url_or_path: str) -> bool:
    """True when ``url_or_path`` names a PostgreSQL store."""
    return url_or_path.strip().lower().startswith(_POSTGRES)


def open_store(url_or_path: str, *, line: str = "line") -> EventStore:
    """Open (creating if needed) the event store at ``url_or_path``.

    Args:
        url_or_path: a file path, ``sqlite:///path`` or ``postgresql://...``; see the module docstring.
        line: the line's name (``line.name``); a PostgreSQL store shared by lines keeps each line's rows apart by it.

    Returns:
        A :class:`sorter.analytics.sqlite_store.SqliteEventStore` or a
        :class:`sorter.analytics.postgres_store.PostgresEventStore`.

    Raises:
        EventStoreUrlError: an unknown scheme, or PostgreSQL without its driver installed.
        EventStoreError: the store cannot be used (the message says why and what to do).
    """
    text = url_or_path.strip()
    lower = text.lower()
    if lower.startswith(_POSTGRES):
        from sorter.analytics.postgres_store import PostgresEventStore

        if lower.startswith("postgresql+psycopg://"):  # SQLAlchemy spelling; libpq wants plain postgresql://
            text = "postgresql://" + text[len("postgresql+psycopg://") :]
        return PostgresEventStore(text, line=line)
    if lower.startswith("sqlite:"):
        if not lower.startswith("sqlite:///") or not text[len("sqlite:///") :]:
            raise EventStoreUrlError(
                f"event store {text!r}: a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        path = text[len("sqlite:///") :]
    elif "://" in text or not text:
        raise EventStoreUrlError(
            f"event store {text!r}: unsupported location; use a file path or one of: {', '.join(s + '...' for s in SCHEMES)} "
            "(or a plain file path for SQLite)"
        )
    else:
        path = text
    from sorter.analytics.sqlite_store import SqliteEventStore  # here, not at the top: sqlite_store imports this module

    return SqliteEventStore(path)
