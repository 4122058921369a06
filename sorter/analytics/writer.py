"""Background writer: the hot path hands events over without ever waiting; a daemon thread batches them into the store.

Why a thread and a bounded queue: a SQLite commit takes 0.1-10 ms (more on a
busy SD card), far too long for the main loop. :meth:`EventWriter.submit` only
appends to a deque under a lock held for a few operations; when the queue is
full the event is dropped and counted instead, because losing an analytics
record is better than stalling the sorting line or growing memory without bound.

The thread writes a batch when ``batch_size`` events are queued or when the
oldest queued event has waited ``flush_interval_s`` (by the injected clock),
so at most one batch (plus what is queued) is lost on ``kill -9``. A failing
write (disk full, database down...) is logged once per kind of error, counted
and retried with growing pauses, ``max_retries`` times or, with ``retry_for_s``,
for that long (so a database restart loses nothing; newer events queue up
meanwhile); then the batch is given up (counted in ``lost``) and the writer
carries on. Nothing it does ever raises into the caller of ``submit``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from types import TracebackType

from sorter.analytics.events import TrackEvent
from sorter.analytics.store import EventSink
from sorter.clock import Clock, MonotonicClock

log = logging.getLogger(__name__)

_POLL_S = 0.1  # longest sleep between clock checks, so an injected (manual) clock is honoured promptly


class EventWriter:
    """Batches :class:`TrackEvent` s into an :class:`EventSink` from a daemon thread (started here).

    Args:
        store: where batches go; the writer does not close it (its owner does, after :meth:`close`).
        batch_size: events per transaction (>= 1).
        flush_interval_s: longest time an event waits in the queue before it is written (s).
        max_queue: queued events beyond which :meth:`submit` drops (bounds memory).
        max_retries: extra attempts for a batch whose write fails, before it is given up (when ``retry_for_s`` is None).
        retry_backoff_s: wait before the first retry (s); doubles for each further one, up to ``max_backoff_s``.
        retry_for_s: when set, a failing batch is retried for this long (real s) instead of ``max_retries`` times.
        max_backoff_s: the longest pause between two attempts (s).
        clock: monotonic time source for the flush interval (a ManualClock in tests).

    Attributes (counters, read from any thread):
        written: events stored. dropped: events refused by :meth:`submit` (queue full or writer closed).
        lost: events of batches given up after ``max_retries``. write_errors: failed write attempts.
        last_error: ``"Type: message"`` of the latest failed write, None if none yet.
    """

    def __init__(
        self,
        store: EventSink,
        batch_size: int = 256,
        flush_interval_s: float = 0.5,
        max_queue: int = 100_000,
        *,
        max_retries: int = 3,
        retry_backoff_s: float = 0.05,
        retry_for_s: float | None = None,
        max_backoff_s: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        if batch_size < 1 or max_queue < 1 or flush_interval_s <= 0 or max_retries < 0 or retry_backoff_s < 0:
            raise ValueError("EventWriter: need batch_size, max_queue >= 1, flush_interval_s > 0, retries, backoff >= 0")
        if (retry_for_s is not None and retry_for_s < 0) or max_backoff_s < 0:
            raise ValueError("EventWriter: retry_for_s and max_backoff_s must be >= 0")
        self._retry_for_s, self._max_backoff_s = retry_for_s, max_backoff_s
        self._store, self._batch_size, self._max_queue = store, batch_size, max_queue
        self._interval_ns = int(flush_interval_s * 1e9)
        self._max_retries, self._backoff_s = max_retries, retry_backoff_s
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._queue: deque[tuple[int, TrackEvent]] = deque()  # (clock ns when submitted, event)
        self._cond = threading.Condition(threading.Lock())
        self._accepted = 0  # events ever queued; _done counts those written or given up
        self._done = 0
        self._flush_wanted = False
        self._closing = False
        self._stop = threading.Event()  # set by close(): cuts retry pauses short
        self._failing = False
        self._error_kinds: set[str] = set()
        self.written = self.dropped = self.lost = self.write_errors = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    @property
    def failing(self) -> bool:
        """True from a failed write until the next successful one (the store cannot take events now)."""
        return self._failing

    @property
    def queued(self) -> int:
        """Events waiting in the queue now."""
        return len(self._queue)

    def submit(self, event: TrackEvent) -> bool:
        """Queue ``event`` for writing; never blocks, never raises.

        Returns:
            False when the event was dropped (queue full, or the writer closed); counted in ``dropped``.
        """
        with self._cond:
            if self._closing or len(self._queue) >= self._max_queue:
                self.dropped += 1
                return False
            self._queue.append((self._clock.now_ns(), event))
            self._accepted += 1
            if len(self._queue) == self._batch_size:
                self._cond.notify_all()
        return True

    def flush(self, timeout_s: float = 1.0) -> bool:
        """Write everything submitted so far now; wait at most ``timeout_s`` (real seconds).

        Returns:
            True when all of it was written or given up within the timeout.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._accepted
            self._flush_wanted = True
            self._cond.notify_all()
            while self._done < target and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return self._done >= target

    def close(self, timeout_s: float = 1.0) -> bool:
        """Stop accepting events, write what is queued and stop the thread, all within ``timeout_s``.

        Meant for shutdown (SIGTERM drains within a second). Idempotent.

        Returns:
            True when the queue was drained and the thread stopped in time; else the rest is abandoned (logged).
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("event writer: %d events unwritten after %.2f s; abandoned at shutdown", len(self._queue), timeout_s)
            return False
        return True

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _next_batch(self) -> list[TrackEvent] | None:
        """Wait until a batch is due and take it off the queue; None when closed and drained."""
        with self._cond:
            while True:
                n = len(self._queue)
                if n == 0:
                    self._flush_wanted = False
                    if self._closing:
                        return None
                    self._cond.wait(_POLL_S)
                    continue
                wait_ns = self._queue[0][0] + self._interval_ns - self._clock.now_ns()
                if n >= self._batch_size or self._flush_wanted or self._closing or wait_ns <= 0:
                    return [self._queue.popleft()[1] for _ in range(min(n, self._batch_size))]
                self._cond.wait(min(wait_ns / 1e9, _POLL_S))

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            ok = self._write(batch)
            with self._cond:
                self._done += len(batch)
                if ok:
                    self.written += len(batch)
                else:
                    self.lost += len(batch)
                self._cond.notify_all()

    def _write(self, batch: list[TrackEvent]) -> bool:
        """Write one batch, retrying with backoff; True on success. Catches everything: the writer must survive."""
        backoff_s = self._backoff_s
        t_first_s = time.monotonic()
        attempt = 0
        while True:
            try:
                self._store.add_batch(batch)
            except Exception as e:
                kind = type(e).__name__
                self.write_errors += 1
                self.last_error = f"{kind}: {e}"
                if kind not in self._error_kinds:
                    self._error_kinds.add(kind)
                    log.error("event store write failed (%s); retrying, further %s errors logged at debug level", e, kind)
                else:
                    log.debug("event store write failed again: %s", e)
                self._failing = True
                attempt += 1
                if self._retry_for_s is not None:
                    more = time.monotonic() - t_first_s < self._retry_for_s and not self._stop.is_set()
                else:
                    more = attempt <= self._max_retries
                if not more:
                    break  # _failing stays set: the store still does not work
                self._stop.wait(backoff_s)  # a real pause (the disk or server needs real time), cut short by close()
                backoff_s = min(backoff_s * 2, self._max_backoff_s)
                continue
            if self._failing:
                self._failing = False
                log.info("event store writes work again (%d failed attempts so far)", self.write_errors)
            return True
        log.error("event store: gave up %d events after %d attempts (%s)", len(batch), attempt, self.last_error)
        return False
