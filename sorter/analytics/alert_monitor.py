"""The running line's alerts: :class:`AlertMonitor` evaluates ``analytics.alerts`` over the live event store.

The service calls :meth:`AlertMonitor.poll` now and then (every few seconds,
off the hot path: it reads the store) and exports :meth:`AlertMonitor.gauges`
on ``/metrics``. Each evaluation waits ``lag_s`` after its clock position, so
that events still waiting for the controller's report or for the writer's next
batch have reached the store; raised, worsened and cleared alerts are written
to the store's alerts table. A store that cannot be written keeps the changes
for the next poll (writes are idempotent), so an outage loses no alert.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC
from typing import Protocol

from sorter.analytics.alert_eval import AlertEvaluator
from sorter.analytics.alerts import Alert, AlertsConfig, GaugeSample
from sorter.analytics.events import TrackEvent
from sorter.analytics.store import EventStoreError
from sorter.analytics.timebins import NS_PER_S, format_iso

log = logging.getLogger(__name__)

#: Steps evaluated at most by one poll (a service that was stopped is not replayed for hours).
MAX_CATCH_UP_STEPS = 60


class AlertStore(Protocol):
    """What the monitor needs of an event store."""

    def events(self, since_ns: int | None = None, until_ns: int | None = None, limit: int | None = None) -> list[TrackEvent]:
        ...

    def put_alerts(self, alerts: Iterable[Alert]) -> None:
        ...

    def alerts(self, since_ns: int | None = None, until_ns: int | None = None, *, active_only: bool = False) -> list[Alert]:
        ...


class AlertMonitor:
    """Evaluates the alert rules on the live store and records their alerts in it.

    Args:
        store: the line's event store.
        config: ``analytics.alerts``.
        targets: ``policy.targets``.
        t_begin_ns: wall-clock epoch ns when the line started; no window reaching back before it is judged.
        verb: ``ejected`` (air jets) or ``picked`` (robot).
        lag_s: how long after its clock position a step is evaluated; at least the longest time an event takes to
            reach the store (``analytics.outcome_wait_s`` plus ``analytics.flush_interval_s``, plus a margin).

    Alerts left open by an earlier run are continued when their rule still exists and closed at ``t_begin_ns``
    otherwise (a rule removed from the config cannot clear its alert).
    """

    def __init__(
        self,
        store: AlertStore,
        config: AlertsConfig,
        *,
        targets: Iterable[str],
        t_begin_ns: int,
        verb: str = "ejected",
        lag_s: float = 10.0,
    ) -> None:
        self.store = store
        self.evaluator = AlertEvaluator(config, targets=targets, t_begin_ns=t_begin_ns, verb=verb)
        self.lag_ns = round(lag_s * NS_PER_S)
        step = self.evaluator.step_ns
        self._last_eval_ns = (t_begin_ns // step) * step
        self._pending: dict[tuple[str, int], Alert] = {}
        self.write_errors = 0
        if config.rules:
            try:
                orphans = self.evaluator.adopt(store.alerts(active_only=True))
            except EventStoreError as e:
                log.warning("alerts: cannot read the open alerts of an earlier run (%s); they stay open", e)
                orphans = []
            for a in orphans:
                self._queue(Alert(a.rule, a.kind, a.t_start_ns, max(a.t_start_ns, t_begin_ns), a.value, a.threshold,
                                  a.unit, a.window_s, a.message + " (closed at restart: the rule no longer exists)"))
            self._flush()

    def _queue(self, a: Alert) -> None:
        self._pending[(a.rule, a.t_start_ns)] = a

    def _flush(self) -> None:
        if not self._pending:
            return
        try:
            self.store.put_alerts(list(self._pending.values()))
        except EventStoreError as e:
            self.write_errors += 1
            log.warning("alerts: cannot record %d alert change(s) in the event store (%s); retrying at the next poll",
                        len(self._pending), e)
            return
        self._pending.clear()

    def poll(self, t_now_ns: int) -> list[Alert]:
        """Evaluate every step due by ``t_now_ns`` (wall-clock epoch ns) and record the changes; returns the changes.

        Raises:
            EventStoreError: the store cannot be read (nothing was evaluated; the next poll tries again).
        """
        ev = self.evaluator
        if not ev.config.rules:
            return []
        step = ev.step_ns
        due = ((t_now_ns - self.lag_ns) // step) * step
        if due <= self._last_eval_ns:
            return []
        first = max(self._last_eval_ns + step, due - (MAX_CATCH_UP_STEPS - 1) * step)
        events = self.store.events(since_ns=first - ev.max_window_ns, until_ns=due)
        index = ev.index(events)
        changes: list[Alert] = []
        for t in range(first, due + 1, step):
            for a in ev.evaluate(t, index):
                if a.t_end_ns is not None:
                    log.warning("alert %s cleared (raised %s; worst: %s)", a.rule, format_iso(a.t_start_ns, UTC), a.message)
                elif a.t_start_ns == t:
                    log.warning("alert %s raised: %s", a.rule, a.message)
                changes.append(a)
                self._queue(a)
        self._last_eval_ns = due
        self._flush()
        return changes

    def active(self) -> list[Alert]:
        """Alerts that last now."""
        return self.evaluator.active()

    def gauges(self) -> list[GaugeSample]:
        """Gauge values for ``/metrics`` (see :meth:`AlertEvaluator.gauges`)."""
        return self.evaluator.gauges()
