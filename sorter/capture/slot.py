"""A one-frame slot between a capture thread and the main loop (drop-oldest)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds only the newest item; an unread item that gets replaced counts as dropped.

    Never blocks the producer: a live camera must not wait for processing.

    Attributes:
        prepare: run on each item in the producer's thread before it enters the slot (the detector's
            preprocessing, overlapping the consumer's work on the previous item); ``None``: items go in as they come.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self.dropped = 0
        self.put_count = 0
        self.prepare: Callable[[T], T] | None = None

    def put(self, item: T) -> None:
        prepare = self.prepare
        if prepare is not None:
            item = prepare(item)
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            self._cond.notify()

    def take(self, timeout_s: float) -> T | None:
        """Take the newest item, waiting up to ``timeout_s``; ``None`` on timeout."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout_s)
            item, self._item = self._item, None
            return item
