"""The running line's alert rules (``analytics.alerts``): evaluated every few seconds on a thread of their own.

:class:`~sorter.analytics.alert_monitor.AlertMonitor` reads the event store, so
it never runs on the loop: :class:`AlertPoller` polls it from its own thread
and keeps copies of what ``/status`` (active alerts) and ``/metrics`` (the
``sorter_alert_*`` gauges) show, so the web publisher never waits for the store.
A store that cannot be read is retried at the next poll (the monitor keeps
unwritten alert changes until then).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sorter.analytics.store import EventStoreError

if TYPE_CHECKING:
    from sorter.analytics.alert_monitor import AlertMonitor
    from sorter.runtime.line import Line

log = logging.getLogger(__name__)

#: seconds between two polls at most
POLL_PERIOD_S = 5.0


def alert_dict(a: Any) -> dict[str, Any]:
    """An :class:`~sorter.analytics.alerts.Alert` as plain data for ``/status``."""
    return {
        "rule": a.rule,
        "kind": a.kind,
        "since_wall_s": round(a.t_start_ns / 1e9, 3),
        "value": round(float(a.value), 3),
        "threshold": float(a.threshold),
        "unit": a.unit,
        "window_s": float(a.window_s),
        "message": a.message,
    }


def gauge_dict(g: Any) -> dict[str, Any]:
    """A :class:`~sorter.analytics.alerts.GaugeSample` as plain data (what the web process renders)."""
    return {"name": g.name, "help": g.help, "labels": [list(kv) for kv in g.labels], "value": float(g.value)}


class AlertPoller:
    """Polls an :class:`AlertMonitor` every ``period_s`` on a daemon thread (``start``; ``close`` stops it).

    Args:
        monitor: the line's monitor.
        period_s: seconds between polls.
        wall_ns: wall clock in epoch ns (the store's events carry wall-clock stamps); injected for tests.
    """

    def __init__(self, monitor: AlertMonitor, period_s: float, wall_ns: Callable[[], int] = time.time_ns) -> None:
        self.monitor = monitor
        self.period_s = period_s
        self._wall_ns = wall_ns
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.read_errors = 0
        self._active: list[dict[str, Any]] = []
        self._gauges: tuple[dict[str, Any], ...] = ()
        self._publish()

    def start(self) -> AlertPoller:
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.poll_once()

    def poll_once(self) -> None:
        """One evaluation of whatever steps are due; a store that cannot be read is logged and retried next time."""
        try:
            self.monitor.poll(self._wall_ns())
        except EventStoreError as e:
            self.read_errors += 1
            if self.read_errors == 1 or self.read_errors % 60 == 0:
                log.warning("alerts: cannot read the event store (%s); evaluation retried every %.0f s", e, self.period_s)
            return
        self.polls += 1
        self._publish()

    def _publish(self) -> None:
        active = [alert_dict(a) for a in self.monitor.active()]
        gauges = tuple(gauge_dict(g) for g in self.monitor.gauges())
        with self._lock:
            self._active, self._gauges = active, gauges

    def active(self) -> list[dict[str, Any]]:
        """Alerts that last now (copies)."""
        with self._lock:
            return [dict(a) for a in self._active]

    def gauges(self) -> tuple[dict[str, Any], ...]:
        """The ``sorter_alert_active``, ``sorter_alert_value`` and ``sorter_alert_threshold`` samples of the last poll."""
        with self._lock:
            return self._gauges

    def follow_targets(self, targets: tuple[str, ...]) -> None:
        """A reload changed ``policy.targets``: objects finished from now on are judged against the new targets."""
        self.monitor.evaluator.set_targets(targets, self._wall_ns())

    def close(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)


def start_alerts(line: Line) -> AlertPoller | None:
    """An :class:`AlertPoller` on the line's event store when ``analytics.alerts`` has rules (else None)."""
    cfg = line.cfg
    rules = cfg.analytics.alerts
    events = line.events
    if events is None or not rules.rules:
        if rules.rules:
            log.warning("analytics.alerts has rules but analytics.store is not set: no alert is evaluated")
        return None
    from sorter.analytics.alert_monitor import AlertMonitor

    monitor = AlertMonitor(
        events.store,
        rules,
        targets=cfg.policy.targets,
        t_begin_ns=time.time_ns(),
        verb="picked" if cfg.line.mode == "robot" else "ejected",
        lag_s=cfg.analytics.outcome_wait_s + cfg.analytics.flush_interval_s + 5,
    )
    return AlertPoller(monitor, max(1.0, min(POLL_PERIOD_S, rules.step_s / 2))).start()
