"""What went wrong during a run, kept until the run ends: active faults with their reason and start, and counts.

Two kinds of trouble reach it:

* *conditions* that last (the camera stopped delivering, the controller link is down, the event store cannot
  write): raised with a reason, cleared when they end; each raise counts once, and a cleared condition stays
  counted, with the time it cleared;
* *events* that happen and are over (a controller watchdog trip, a link reconnection): the controller link
  counts them itself; :meth:`FaultBook.observe_actuator` turns the growth of those counters into events.

Pure book-keeping behind one lock (the main loop raises and clears, the terminal and the web publisher read).
Wall-clock seconds are only shown to people, never used for decisions.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

#: Actuator counters that count watchdog trips, most direct first: the host session's count of the faults the
#: controller reported, then the controller's own cumulative count (read from its status).
WATCHDOG_KEYS = ("link_watchdog_faults", "controller_watchdog_trips")
RECONNECT_KEY = "reconnects"

#: Names of the event counts in summaries, ``/status`` and the terminal.
WATCHDOG = "watchdog_trips"
RECONNECTS = "link_reconnects"


@dataclass(frozen=True, slots=True)
class ActiveFault:
    """A condition that lasts now."""

    kind: str
    reason: str
    since_wall_s: float


@dataclass(slots=True)
class _Kind:
    count: int = 0
    reason: str | None = None  # None: not active now
    since_wall_s: float = 0.0
    cleared_wall_s: float | None = None


@dataclass(slots=True)
class _Event:
    count: int = 0
    last_wall_s: float | None = None


class FaultBook:
    """Active conditions, their counts, and counted events (watchdog trips, link reconnects) of one run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: dict[str, _Kind] = {}
        self._events: dict[str, _Event] = {}
        self._prev: dict[str, int] = {}  # last value seen of each cumulative actuator counter
        self._totals: dict[str, int] = {}  # its growth during this run
        self._reported: dict[str, int] = {}  # event totals already turned into events

    # --- conditions -------------------------------------------------------------------------------------------
    def raise_fault(self, kind: str, reason: str, t_wall_s: float) -> bool:
        """A condition of ``kind`` starts (or its reason changes). Returns True when it starts (and was counted)."""
        with self._lock:
            k = self._kinds.setdefault(kind, _Kind())
            if k.reason is not None:
                k.reason = reason
                return False
            k.count += 1
            k.reason = reason
            k.since_wall_s = t_wall_s
            return True

    def clear_fault(self, kind: str, t_wall_s: float) -> bool:
        """The condition of ``kind`` ended. Returns True when it was active."""
        with self._lock:
            k = self._kinds.get(kind)
            if k is None or k.reason is None:
                return False
            k.reason = None
            k.cleared_wall_s = t_wall_s
            return True

    # --- events -------------------------------------------------------------------------------------------------
    def add_event(self, name: str, n: int, t_wall_s: float) -> None:
        """``n`` events called ``name`` happened (``n`` <= 0 is ignored)."""
        if n <= 0:
            return
        with self._lock:
            e = self._events.setdefault(name, _Event())
            e.count += n
            e.last_wall_s = t_wall_s

    def observe_actuator(self, stats: Mapping[str, object], t_wall_s: float) -> dict[str, int]:
        """Turn the growth of the actuator's cumulative counters into events; returns the new ones (name -> n).

        A watchdog trip is seen from two sides: the host session counts the faults it was told of, and the
        controller counts every trip (over its whole uptime, so only its growth during this run counts; a
        controller that restarted counts from zero again). A trip during a link outage reaches the host only
        through the controller's count, so the larger of the two totals is the run's count.
        """
        new: dict[str, int] = {}
        with self._lock:
            host = self._run_total("host_watchdog", stats.get(WATCHDOG_KEYS[0]), from_zero=True)
            ctrl = self._run_total("controller_watchdog", stats.get(WATCHDOG_KEYS[1]), from_zero=False)
            reconnects = self._run_total("reconnects", stats.get(RECONNECT_KEY), from_zero=True)
            for name, total in ((WATCHDOG, max(host, ctrl)), (RECONNECTS, reconnects)):
                grown = total - self._reported.get(name, 0)
                if grown > 0:
                    self._reported[name] = total
                    new[name] = grown
        for name, n in new.items():
            self.add_event(name, n, t_wall_s)
        return new

    def _run_total(self, key: str, value: object, *, from_zero: bool) -> int:
        """This run's total of a cumulative counter (``from_zero``: it started at zero with the run). Under the lock."""
        if isinstance(value, bool) or not isinstance(value, int):
            return self._totals.get(key, 0)
        prev = self._prev.get(key, 0 if from_zero else value)
        grown = value - prev if value >= prev else value  # a counter that went back restarted from zero
        self._prev[key] = value
        self._totals[key] = self._totals.get(key, 0) + max(0, grown)
        return self._totals[key]

    # --- reading ------------------------------------------------------------------------------------------------
    def active(self) -> list[ActiveFault]:
        """Conditions that last now, oldest first."""
        with self._lock:
            out = [ActiveFault(kind, k.reason, k.since_wall_s) for kind, k in self._kinds.items() if k.reason is not None]
        return sorted(out, key=lambda f: f.since_wall_s)

    def counts(self) -> dict[str, int]:
        """Raises per condition kind and counted events, e.g. ``{"camera": 2, "watchdog_trips": 1}`` (zeros left out)."""
        with self._lock:
            out = {kind: k.count for kind, k in self._kinds.items() if k.count}
            out.update({name: e.count for name, e in self._events.items() if e.count})
        return dict(sorted(out.items()))

    def cleared_at(self, kind: str) -> float | None:
        """Wall time (s) the condition of ``kind`` last cleared (None: never raised, or active now)."""
        with self._lock:
            k = self._kinds.get(kind)
            return None if k is None or k.reason is not None else k.cleared_wall_s

    def last_event_at(self, name: str) -> float | None:
        """Wall time (s) of the last event called ``name`` (None: none yet)."""
        with self._lock:
            e = self._events.get(name)
            return None if e is None else e.last_wall_s
