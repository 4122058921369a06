"""Turn finished tracks into stored events: decision, command ids, and the controller's report of the outcome.

Runs on the main loop (cheap dict work); the writes happen on the event
writer's own thread. A track that left the view with a command still in flight
waits up to ``outcome_wait_s`` for the controller's report before its event is
queued, so most events carry their real outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sorter.analytics.events import TrackEvent
from sorter.analytics.store import EventStore, check_free_space, open_store
from sorter.analytics.writer import EventWriter
from sorter.clock import Clock
from sorter.entities import MATERIAL_CLASSES, CommandReport, Track

if TYPE_CHECKING:
    from sorter.config import AnalyticsConfig
    from sorter.runtime.pipeline import CycleResult

FINAL_STATUSES = ("executed", "late", "rejected")
_MAX_ORPHAN_OUTCOMES = 10_000


class EventRecorder:
    """Collects decisions and reports per track and hands finished events to an :class:`EventWriter`."""

    def __init__(
        self,
        store: EventStore,
        writer: EventWriter,
        clock: Clock,
        outcome_wait_s: float,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.writer = writer
        self._clock = clock
        self._wait_ns = round(outcome_wait_s * 1e9)
        self._wall_ns = wall_ns
        self._decisions: dict[int, Any] = {}  # track id -> its Decision
        self._held: set[int] = set()  # command ids not sent because actuation was paused
        self._outcomes: dict[int, str] = {}  # command id -> final report, for tracks still live
        self._waiting: dict[int, tuple[TrackEvent, int]] = {}  # command id -> (event, deadline ns)

    def on_cycle(self, result: CycleResult, actuation_enabled: bool) -> None:
        for d in result.decisions:
            self._decisions[int(d.track_id)] = d
        if not actuation_enabled:
            self._held.update(c.command_id for c in result.commands)
        for tr in result.retired:
            if tr.confirmed:
                self._finish(tr)
        self._expire(self._clock.now_ns())

    def on_reports(self, reports: list[CommandReport]) -> None:
        for r in reports:
            if r.status not in FINAL_STATUSES:
                continue
            waiting = self._waiting.pop(r.command_id, None)
            if waiting is not None:
                self.writer.submit(_with_outcome(waiting[0], r.status))
            else:
                if len(self._outcomes) >= _MAX_ORPHAN_OUTCOMES:
                    self._outcomes.pop(next(iter(self._outcomes)))
                self._outcomes[r.command_id] = r.status

    def _finish(self, tr: Track) -> None:
        d = self._decisions.pop(tr.track_id, None)
        cmd = getattr(d, "command_id", None)
        ev = TrackEvent(
            t_wall_ns=self._wall_ns(),
            t_first_seen_ns=tr.t_first_ns,
            t_last_seen_ns=tr.t_last_ns,
            track_id=tr.track_id,
            class_name=MATERIAL_CLASSES[tr.class_id],
            confidence=round(float(tr.class_confidence), 4),
            length_mm=round(float(tr.length_mm), 1),
            width_mm=round(float(tr.width_mm), 1),
            x_mm=round(float(tr.x_mm), 1),
            u_mm=round(float(tr.u_mm), 1),
            n_detections=int(tr.hits),
            decision=str(d.action) if d is not None else "undecided",
            command_ids=(int(cmd),) if cmd is not None else (),
        )
        if cmd is None:
            self.writer.submit(ev)
        elif cmd in self._held:
            self._held.discard(cmd)
            self.writer.submit(_with_outcome(ev, "held_paused"))
        elif cmd in self._outcomes:
            self.writer.submit(_with_outcome(ev, self._outcomes.pop(cmd)))
        else:
            self._waiting[cmd] = (ev, self._clock.now_ns() + self._wait_ns)

    def _expire(self, now_ns: int) -> None:
        if not self._waiting:
            return
        for cmd in [c for c, (_e, deadline) in self._waiting.items() if deadline <= now_ns]:
            self.writer.submit(self._waiting.pop(cmd)[0])

    def stats(self) -> dict[str, int]:
        w = self.writer
        return {
            "written": int(w.written),
            "dropped": int(w.dropped),
            "lost": int(w.lost),
            "write_errors": int(w.write_errors),
            "queued": int(w.queued) + len(self._waiting),
        }

    def close(self, timeout_s: float = 1.0) -> None:
        """Queue what still waits for a report (outcome unknown), drain the writer within ``timeout_s``, close the store."""
        for ev, _deadline in self._waiting.values():
            self.writer.submit(ev)
        self._waiting.clear()
        try:
            self.writer.close(timeout_s)
        finally:
            self.store.close()


def _with_outcome(ev: TrackEvent, outcome: str) -> TrackEvent:
    from dataclasses import replace

    return replace(ev, outcome=outcome)


def create_event_recorder(cfg: AnalyticsConfig, clock: Clock, line: str = "line") -> EventRecorder | None:
    """The recorder for ``analytics.store`` (None when no store is configured); raises a clear error when it cannot open."""
    if cfg.store is None:
        return None
    check_free_space(cfg.store, cfg.min_free_mb)
    store = open_store(cfg.store, line=line)
    writer = EventWriter(store, batch_size=cfg.batch_size, flush_interval_s=cfg.flush_interval_s, retry_for_s=cfg.retry_for_s)
    return EventRecorder(store, writer, clock, cfg.outcome_wait_s)
