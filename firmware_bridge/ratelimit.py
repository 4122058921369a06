"""Log a burst of similar problems once, not once per byte."""

from __future__ import annotations

import logging


class BurstLog:
    """Counts events; logs the first of a burst and, when the next burst starts, how many the last one had.

    A burst ends after ``quiet_ns`` without events. Callers pass the time, so
    this stays deterministic in tests.

    Args:
        logger: where to log.
        what: words for the event, e.g. "received frames with errors".
        quiet_ns: silence that ends a burst.
        level: logging level.
    """

    def __init__(self, logger: logging.Logger, what: str, quiet_ns: int = 200_000_000, level: int = logging.WARNING) -> None:
        self.logger = logger
        self.what = what
        self.quiet_ns = quiet_ns
        self.level = level
        self.total = 0
        self.bursts = 0
        self._in_burst = 0
        self._last_ns: int | None = None

    def event(self, now_ns: int, detail: str = "") -> bool:
        """Record one event; return True when it starts a new burst (and was logged)."""
        self.total += 1
        new = self._last_ns is None or now_ns - self._last_ns > self.quiet_ns
        self._last_ns = now_ns
        if new:
            if self._in_burst > 1:
                self.logger.log(self.level, "%s: previous burst had %d", self.what, self._in_burst)
            self.bursts += 1
            self._in_burst = 1
            self.logger.log(self.level, "%s (%s); further ones in this burst are counted, not logged", self.what, detail)
            return True
        self._in_burst += 1
        return False
