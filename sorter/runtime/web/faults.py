"""A fixed-size log of fault transitions (degraded / recovered) with their wall-clock time, for the console."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any


class FaultLog:
    """The last ``capacity`` fault transitions, newest last.

    Args:
        capacity: entries kept; older ones are dropped (the per-kind totals live in ``LineService.faults``).
        wall_s: wall clock in seconds (injected for tests); shown to people, never used for decisions.
    """

    def __init__(self, capacity: int = 50, wall_s: Callable[[], float] = time.time) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._wall_s = wall_s
        self._lock = threading.Lock()

    def add(self, kind: str, reason: str | None) -> None:
        """A fault of ``kind`` raised (with its ``reason``), changed, or cleared (``reason`` None)."""
        entry = {"t_wall_s": round(self._wall_s(), 3), "kind": kind,
                 "state": "recovered" if reason is None else "degraded", "reason": reason or ""}
        with self._lock:
            self._entries.append(entry)

    def recent(self) -> list[dict[str, Any]]:
        """Copies of the entries, newest first."""
        with self._lock:
            return [dict(e) for e in reversed(self._entries)]
