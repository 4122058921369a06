"""Analytics: every finished track becomes a :class:`TrackEvent`, written off the hot path into an event store.

``EventWriter`` (a daemon thread, bounded queue, batches) feeds a store opened by
``open_store`` (SQLite by default: ``SqliteEventStore``); reports query the store.

Reports: ``report`` (clock-aligned buckets from ``timebins``, rates, estimates; pure), ``wording`` (the
same figures in words), ``charts`` (matplotlib), ``render`` (HTML), ``export`` (CSV, Parquet).
Alerts: ``alerts`` (the ``analytics.alerts`` schema and the record), ``alert_eval`` (pure evaluation and
gauges), ``alert_monitor`` (the running line's evaluation over its store).
"""

from __future__ import annotations

from sorter.analytics.events import TrackEvent
from sorter.analytics.sqlite_store import SqliteEventStore
from sorter.analytics.store import (
    EventSink,
    EventStore,
    EventStoreCorruptError,
    EventStoreError,
    EventStoreFullError,
    EventStoreLocationError,
    EventStoreReadOnlyError,
    EventStoreSchemaError,
    EventStoreUrlError,
    open_store,
)
from sorter.analytics.writer import EventWriter

__all__ = [
    "EventSink",
    "EventStore",
    "EventStoreCorruptError",
    "EventStoreError",
    "EventStoreFullError",
    "EventStoreLocationError",
    "EventStoreReadOnlyError",
    "EventStoreSchemaError",
    "EventStoreUrlError",
    "EventWriter",
    "SqliteEventStore",
    "TrackEvent",
    "open_store",
]
