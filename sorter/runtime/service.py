"""The running line as a service: state, faults, pause, live config reload, and what the HTTP endpoint shows.

The main loop calls :meth:`LineService.begin_cycle` and :meth:`end_cycle`; the
HTTP threads only read copies (ints, a frame reference) or post requests
(pause, a validated new config) that the main loop applies between frames, so
no stage is ever touched from two threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sorter.analytics.store import EventStoreError, check_free_space, sqlite_path
from sorter.config import Config
from sorter.errors import ConfigError, SorterError
from sorter.runtime.fault_book import WATCHDOG, FaultBook
from sorter.runtime.flight_recorder import FlightRecorder
from sorter.runtime.metrics_text import MetricsSnapshot
from sorter.runtime.reload import changed_keys, unsafe_changes
from sorter.runtime.sdnotify import SystemdNotifier
from sorter.runtime.status_extras import extra_status
from sorter.runtime.web.bounded import bounded_score
from sorter.runtime.web.faults import FaultLog
from sorter.runtime.web.live import LiveView

if TYPE_CHECKING:
    from sorter.entities import CommandReport
    from sorter.runtime.alert_hook import AlertPoller
    from sorter.runtime.collect_hook import LiveCollector
    from sorter.runtime.line import Line
    from sorter.runtime.model_hook import ModelReloader
    from sorter.runtime.pipeline import CycleResult

log = logging.getLogger(__name__)

ConfigLoader = Callable[[], Config]

#: Per-stage latency percentiles in /status and /metrics are over this many recent samples (about a minute at 60 fps).
LATENCY_WINDOW = 3600


class LineService:
    """Service state of one line: what the web publisher (``sorter.runtime.web.bridge``) reads and asks of it."""

    def __init__(self, line: Line, load_config: ConfigLoader | None = None, notifier: SystemdNotifier | None = None) -> None:
        self.line = line
        self.notifier = notifier or SystemdNotifier()
        self._load_config = load_config
        self._t_start = time.monotonic()
        self._lock = threading.Lock()
        self._paused_reason: str | None = None
        self._degraded: dict[str, str] = {}
        self.fault_book = FaultBook()  # lasting faults with their start, counts of every kind (the terminal's panel)
        self._stopping = False
        self._last: CycleResult | None = None
        self._actions: dict[int, str] = {}
        self._pending: Config | None = None
        self._applied = threading.Event()
        self._fps = 0.0
        self._fps_mark = (time.monotonic(), 0)
        self.reloads = 0
        store = line.cfg.analytics.store
        self._store_file = sqlite_path(store) if store is not None and line.events is not None else None
        fr = line.cfg.service
        self.flight = FlightRecorder(fr.flight_recorder_dir, fr.flight_recorder_cycles) if fr.flight_recorder_dir else None
        self.live = LiveView(line)  # shots, rates and estimates for the console
        self.fault_log = FaultLog()
        self.last_reload: dict[str, Any] | None = None
        self.on_change: Callable[[], None] | None = None  # the web publisher: a state change to show now
        watch = getattr(line.actuator, "watch_link", None)
        if callable(watch):  # a supervised link says at once when it dies and when it is back
            watch(lambda reason: self.set_degraded("link", reason))
        # optional parts, attached by ``service_setup.start_service`` when the config asks for them
        self.alerts: AlertPoller | None = None
        self.collector: LiveCollector | None = None
        self.models: ModelReloader | None = None

    @property
    def faults(self) -> dict[str, int]:
        """Faults since start, per kind: raised conditions (cleared ones included), watchdog trips, link reconnects."""
        return self.fault_book.counts()

    # --- main-loop side -------------------------------------------------------------------------------------------
    @property
    def actuation_enabled(self) -> bool:
        """False while paused or while the camera is not delivering: decisions are still logged, commands not sent."""
        return self._paused_reason is None and "camera" not in self._degraded

    def begin_cycle(self) -> None:
        """Apply a pending reload (and a new detector model) between frames."""
        if self.models is not None:
            self.models.swap_if_pending(self.line)
        with self._lock:
            cfg, self._pending = self._pending, None
        if cfg is not None:
            self._apply(cfg)
            self._applied.set()

    def end_cycle(self, result: CycleResult) -> None:
        first = self._last is None
        self._last = result
        if self.flight is not None:
            self.flight.record(result, time.monotonic_ns())
        self.live.on_cycle(result, held=not self.actuation_enabled)
        if first:
            self.notifier.ready(f"running: {self.line.cfg.line.name}")
        elif self.notifier.watchdog_due():
            self.notifier.ping(self._status_line())
        for d in result.decisions:
            self._actions[int(d.track_id)] = str(d.action)
        for t in result.retired:
            self._actions.pop(t.track_id, None)
        if self.collector is not None:
            self.collector.offer(result, self.line.pipeline.min_score)
        recorder = getattr(self.line, "recorder", None)
        if recorder is not None:
            recorder.poll()  # every cycle (cheap): a --fast recording may end within a second of wall time
        now = time.monotonic()
        t0, n0 = self._fps_mark
        if now - t0 >= 1.0:
            self._fps = (self.line.counters.frames - n0) / (now - t0)
            self._fps_mark = (now, self.line.counters.frames)
            self.health_tick()

    def on_reports(self, reports: list[CommandReport]) -> None:
        """The actuator's reports of this cycle (outcomes of the shots the console draws)."""
        if reports:
            self.live.on_reports(reports)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def health_tick(self) -> None:
        """Degrade while the controller link is down, the event store cannot write or its disk runs out of space."""
        stats = self.line.actuator.stats()
        if "link_connected" in stats:
            self.set_degraded("controller", None if stats["link_connected"] else "controller link down, reconnecting")
        link_health = getattr(self.line.actuator, "link_health", None)
        if callable(link_health):
            self.set_degraded("link", link_health())
        self._count_link_events(stats)
        events = self.line.events
        if events is not None:
            w = events.writer
            self.set_degraded("event store", f"cannot write events: {w.last_error}" if w.failing else None)
        if self._store_file is not None:
            try:
                check_free_space(str(self._store_file), self.line.cfg.analytics.min_free_mb)
                low = None
            except EventStoreError as e:
                low = str(e)
            except OSError as e:
                low = f"cannot read the free space of {self._store_file.parent}: {e}"
            self.set_degraded("disk", low)

    def _count_link_events(self, stats: dict[str, int]) -> None:
        """Watchdog trips and reconnections the controller link counted since the last look: logged and kept."""
        new = self.fault_book.observe_actuator(stats, time.time())
        trips = new.get(WATCHDOG, 0)
        if trips:
            reason = f"controller watchdog tripped ({trips}x): valves were closed, commands re-sent after re-arming"
            log.error("fault: %s", reason, extra={"journal": {"SORTER_FAULT": "watchdog", "SORTER_REASON": reason}})
            self.fault_log.add("watchdog", reason)
            self._changed()

    def set_degraded(self, kind: str, reason: str | None) -> None:
        """Raise (``reason``) or clear (``None``) a degraded condition; each raise counts as a fault of ``kind``."""
        with self._lock:
            if reason is None:
                if self._degraded.pop(kind, None) is None:
                    return
                self.fault_book.clear_fault(kind, time.time())
                self.fault_log.add(kind, None)
                log.warning("recovered: %s", kind, extra={"journal": {"SORTER_FAULT": kind, "SORTER_STATE": "recovered"}})
            else:
                new = self._degraded.get(kind) != reason
                self.fault_book.raise_fault(kind, reason, time.time())
                if kind not in self._degraded:
                    log.error("degraded: %s: %s", kind, reason,
                              extra={"journal": {"SORTER_FAULT": kind, "SORTER_STATE": "degraded", "SORTER_REASON": reason}})
                    if self.flight is not None:
                        self.flight.dump(kind, reason)
                self._degraded[kind] = reason
                if not new:
                    return
                self.fault_log.add(kind, reason)
        self.notifier.status(self._status_line())
        self._changed()

    def stopping(self) -> None:
        self._stopping = True
        self.notifier.stopping()

    def close(self) -> None:
        """Stop the optional parts: the alert poller, the frame collector (its batch is written), the spare model."""
        for part in (self.alerts, self.collector, self.models):
            if part is not None:
                try:
                    part.close()
                except Exception:  # one part failing to stop must not keep the others running
                    log.exception("stopping %s failed", type(part).__name__)

    def _status_line(self) -> str:
        c = self.line.counters
        state, reason = self.state_and_reason()
        head = f"{state}: {reason}" if reason else state
        return f"{head} | {self._fps:.1f} fps | {c.frames} frames | {c.commands_sent} commands"

    def _apply(self, cfg: Config) -> None:
        from sorter.runtime.params import policy_params

        planner: Any = self.line.pipeline.planner
        params = planner.params
        if hasattr(params, "policy"):
            planner.params = replace(params, policy=policy_params(cfg))
        self.line.pipeline.min_score = cfg.detector.min_score
        if self.collector is not None:  # the detector keeps reporting the boxes just under the new threshold
            self.collector.follow_threshold(self.line, cfg.detector.min_score)
        if self.alerts is not None and tuple(cfg.policy.targets) != tuple(self.line.cfg.policy.targets):
            self.alerts.follow_targets(tuple(cfg.policy.targets))  # contamination: judged by the targets of the time
        board = getattr(self.line, "scoreboard", None)
        if board is not None:  # simulation: score what follows against the new targets
            from sorter.runtime.params import target_class_ids

            board.set_targets(target_class_ids(cfg))
        keys = changed_keys(self.line.cfg, cfg)
        self.line.cfg = cfg
        self.reloads += 1
        if keys:
            log.warning("config reloaded: %s", ", ".join(keys))

    # --- HTTP side ------------------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self.state_and_reason()[0]

    def reason(self) -> str:
        return self.state_and_reason()[1]

    def state_and_reason(self) -> tuple[str, str]:
        """The state and its reason taken together, so that a reader never sees one without the other (the camera
        thread may clear a condition between two separate reads: "degraded" with no reason)."""
        with self._lock:
            degraded = dict(self._degraded)
            paused = self._paused_reason
        parts = [f"{k}: {v}" for k, v in degraded.items()]
        if paused:
            parts.append(paused)
        if self._stopping:
            state = "stopping"
        elif self._last is None:
            state = "initialising"
        elif degraded:
            state = "degraded"
        elif paused is not None:
            state = "paused"
        else:
            state = "running"
        return state, "; ".join(parts)

    @property
    def fps(self) -> float:
        """Processed frames per second over the last second."""
        return self._fps

    def actions(self) -> dict[int, str]:
        """A copy of the decided action per live track id."""
        return dict(self._actions)

    def health(self) -> tuple[bool, str]:
        state, reason = self.state_and_reason()
        return state in ("running", "paused"), reason or state

    def pause(self, reason: str) -> None:
        self._paused_reason = reason
        log.warning("actuation paused: %s", reason)
        self._changed()

    def resume(self) -> None:
        if self._paused_reason is not None:
            log.warning("actuation resumed")
        self._paused_reason = None
        self._changed()

    def reload(self, timeout_s: float = 2.0) -> tuple[bool, str]:
        """Validate the config files again; apply only safe changes, between frames. The old config keeps running otherwise."""
        applied, message = self._reload(timeout_s)
        self.last_reload = {"t_wall_s": round(time.time(), 3), "applied": applied, "message": message}
        self._changed()
        return applied, message

    def _reload(self, timeout_s: float) -> tuple[bool, str]:
        if self._load_config is None:
            return False, "this line was started without config files to reload"
        try:
            new = self._load_config()
        except ConfigError as e:
            log.error("config reload refused: %s", "; ".join(e.problems))
            return False, "refused, the running config is unchanged: " + "; ".join(e.problems)
        unsafe = unsafe_changes(self.line.cfg, new)
        if self.models is not None:  # a new model is switched live, after its parity self-test
            unsafe = [k for k in unsafe if k != "detector.model"]
        if unsafe:
            msg = (
                f"refused, the running config is unchanged: {', '.join(unsafe)} need a restart"
                f" (live: policy.*, detector.min_score{', detector.model' if self.models is not None else ''})"
            )
            log.error("config reload %s", msg)
            return False, msg
        model: str | None = None
        if self.models is not None:
            try:
                model = self.models.prepare(new)  # built, warmed up and checked here, on the reload's thread
            except SorterError as e:
                log.error("config reload refused: %s", e)
                return False, f"refused, the running config and model are unchanged: {e}"
        keys = changed_keys(self.line.cfg, new)
        if not keys and model is None:
            return True, "no change"
        self._applied.clear()
        with self._lock:
            self._pending = new
        if not self._applied.wait(timeout_s):
            return False, f"validated but not applied within {timeout_s} s: is the loop running?"
        done = ([", ".join(keys)] if keys else []) + ([model] if model else [])
        return True, "applied: " + "; ".join(done)

    def rollback(self, timeout_s: float = 2.0) -> tuple[bool, str]:
        """Swap the previous detector model back in (``POST /rollback``), between frames."""
        if self.models is None:
            return False, "this line cannot switch models (detector.type onnxruntime, tensorrt or torch can)"
        try:
            message = self.models.rollback()
        except SorterError as e:
            return False, f"refused: {e}"
        self._applied.clear()
        with self._lock:
            self._pending = self.line.cfg  # an unchanged config: applied with the swap, so the wait below means it
        applied = self._applied.wait(timeout_s)
        self.last_reload = {"t_wall_s": round(time.time(), 3), "applied": applied, "message": message}
        self._changed()
        if not applied:
            return False, f"{message}, but not swapped in within {timeout_s} s: is the loop running?"
        return True, message

    def metrics(self) -> MetricsSnapshot:
        c = self.line.counters
        return MetricsSnapshot(
            state=self.state,
            uptime_s=time.monotonic() - self._t_start,
            frames=c.frames,
            frames_dropped=c.frames_dropped + c.frames_dropped_slot_live,
            fps=self._fps,
            latency_ms=self.line.latency.summary_ms(LATENCY_WINDOW),
            commands={
                "sent": c.commands_sent,
                "executed": c.commands_executed,
                "late_dropped": c.commands_late_dropped,
                "rejected": c.commands_rejected,
                "executed_late": c.commands_executed_late,
                "held_while_paused": c.commands_held,
            },
            actuator=self.line.actuator.stats(),
            objects_by_class=dict(c.objects_by_class),
            faults=dict(self.faults),
            events=self.line.events_stats(),
            overload=MetricsSnapshot.overload_of(getattr(self.line, "overload", None)),
            alert_gauges=self.alerts.gauges() if self.alerts is not None else (),
        )

    def status(self, m: MetricsSnapshot | None = None) -> dict[str, Any]:
        """What ``/status`` shows (bounded in size however long the line runs); ``m``: metrics already taken."""
        m = m or self.metrics()
        cfg = self.line.cfg
        state, reason = self.state_and_reason()  # one reading: the snapshot ``m`` may be older than this instant
        return {
            "state": state,
            "reason": reason,
            "line": cfg.line.name,
            "mode": cfg.line.mode,
            "uptime_s": round(m.uptime_s, 1),
            "frames": m.frames,
            "frames_dropped": m.frames_dropped,
            "fps": round(m.fps, 2),
            "latency_ms": m.latency_ms,
            "commands": dict(m.commands),
            "actuator": dict(m.actuator),
            "objects_by_class": dict(m.objects_by_class),
            "faults": dict(m.faults),
            "events": dict(m.events),
            "targets": list(cfg.policy.targets),
            "odometer": getattr(self.line, "odometer_source", "none"),
            "reloads": self.reloads,
            "last_reload": self.last_reload,
            "faults_recent": self.fault_log.recent(),
            "score": bounded_score(self._score()),
            **extra_status(self),
        }

    def _score(self) -> dict[str, Any]:
        """The simulator's scoreboard, read from the HTTP thread while the loop updates it: retried once, else empty."""
        for _ in range(2):
            try:
                return self.line.score()
            except RuntimeError:  # a dict changed size while being read
                continue
        return {}
