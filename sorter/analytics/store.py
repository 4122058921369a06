"""The event store's interface, its errors, and :func:`open_store` (URL or path -> store).

Backends live in their own modules (``sqlite_store``; PostgreSQL is planned) and
are imported only by :func:`open_store`, so that importing this module costs
nothing and a missing driver fails when that backend is asked for, not before.

Supported locations::

    /var/lib/sorter/events.db           a plain path: SQLite
    sqlite:///events.db                 SQLite, relative path (SQLAlchemy convention: three slashes)
    sqlite:////var/lib/sorter/events.db SQLite, absolute path (four slashes)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

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

    def close(self) -> None:
        """Release the store (idempotent)."""
        ...


def open_store(url_or_path: str) -> EventStore:
    """Open (creating if needed) the event store at ``url_or_path``.

    Args:
        url_or_path: a file path or ``sqlite:///path`` (SQLite); see the module docstring.

    Returns:
        A :class:`sorter.analytics.sqlite_store.SqliteEventStore` for SQLite locations.

    Raises:
        EventStoreUrlError: PostgreSQL (not built yet) or an unknown scheme.
        EventStoreError: the SQLite file cannot be used (the message says why and what to do).
    """
    text = url_or_path.strip()
    lower = text.lower()
    if lower.startswith(_POSTGRES):
        raise EventStoreUrlError(
            f"event store {text!r}: PostgreSQL is not built yet (it will need the Python package 'psycopg'); "
            f"use SQLite for now, e.g. sqlite:////var/lib/sorter/events.db or a plain file path"
        )
    if lower.startswith("sqlite:"):
        if not lower.startswith("sqlite:///") or not text[len("sqlite:///") :]:
            raise EventStoreUrlError(
                f"event store {text!r}: a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        path = text[len("sqlite:///") :]
    elif "://" in text or not text:
        raise EventStoreUrlError(
            f"event store {text!r}: unsupported location; use a file path or one of: {', '.join(s + '...' for s in SCHEMES)} "
            "(sqlite:/// is built; postgresql:// is planned)"
        )
    else:
        path = text
    from sorter.analytics.sqlite_store import SqliteEventStore  # here, not at the top: sqlite_store imports this module

    return SqliteEventStore(path)
