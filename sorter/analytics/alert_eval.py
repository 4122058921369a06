"""Alert evaluation (pure): the rules of ``analytics.alerts`` over windows of events, step by step.

:class:`AlertEvaluator` keeps each rule's state (its active alert, its last
value) and is stepped at clock multiples of ``step_s``; :func:`evaluate_history`
steps it over a stored period (for reports), the service's
:class:`sorter.analytics.alert_monitor.AlertMonitor` steps it on the live store.
Both give the same alerts from the same events, because the evaluation times
are the same clock positions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sorter.analytics.alerts import (
    Alert,
    AlertsConfig,
    ClassShareRule,
    ContaminationRule,
    GaugeSample,
    ThroughputRule,
    threshold_of,
)
from sorter.analytics.events import TrackEvent
from sorter.analytics.timebins import NS_PER_S, format_duration_s

ACTUATED = ("eject", "pick")
Rule = ContaminationRule | ThroughputRule | ClassShareRule


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """What went by in one window."""

    objects: int
    actuated: int
    actuated_nontarget: int
    by_class: dict[str, int]


class EventIndex:
    """Events by time with running counts, so that any window's counts cost two binary searches.

    Args:
        events: the events (any order).
        targets: the target classes (``policy.targets``): an actuated object of another class is contamination.
        classes: the classes whose counts windows must give (those of ``class_share`` rules).
        target_changes: ``(t_from_ns, targets)`` of each later change of the targets (a live reload), oldest first:
            each event is judged against the targets in force when it finished, so objects ejected as targets
            before a reload are not contamination after it.
    """

    def __init__(
        self,
        events: Iterable[TrackEvent],
        targets: Iterable[str],
        classes: Iterable[str] = (),
        target_changes: Sequence[tuple[int, Iterable[str]]] = (),
    ) -> None:
        evs = sorted(events, key=lambda e: e.t_wall_ns)
        self.t_ns = np.array([e.t_wall_ns for e in evs], dtype=np.int64)
        act = np.array([e.decision in ACTUATED for e in evs], dtype=bool)
        eras = [(-(2**63), frozenset(targets))] + [(int(t), frozenset(c)) for t, c in target_changes]
        starts = np.array([t for t, _ in eras], dtype=np.int64)
        era_of = np.searchsorted(starts, self.t_ns, side="right") - 1
        nontarget = np.array([e.class_name not in eras[int(k)][1] for e, k in zip(evs, era_of, strict=True)], dtype=bool)
        self._cum_act = np.concatenate(([0], np.cumsum(act)))
        self._cum_act_nt = np.concatenate(([0], np.cumsum(act & nontarget)))
        self._cum_class = {c: np.concatenate(([0], np.cumsum([e.class_name == c for e in evs]))) for c in set(classes)}

    def window(self, t0_ns: int, t1_ns: int) -> WindowCounts:
        """Counts of the events with ``t0_ns <= t_wall_ns < t1_ns``."""
        lo, hi = (int(i) for i in np.searchsorted(self.t_ns, [t0_ns, t1_ns], side="left"))
        return WindowCounts(
            objects=hi - lo,
            actuated=int(self._cum_act[hi] - self._cum_act[lo]),
            actuated_nontarget=int(self._cum_act_nt[hi] - self._cum_act_nt[lo]),
            by_class={c: int(cum[hi] - cum[lo]) for c, cum in self._cum_class.items()},
        )


def measure(rule: Rule, counts: WindowCounts, window_s: float) -> float | None:
    """The rule's value over a window (percent, or objects per minute); None when the window has too few objects."""
    if isinstance(rule, ThroughputRule):
        return counts.objects / (window_s / 60.0)
    if isinstance(rule, ContaminationRule):
        if counts.actuated < rule.min_count:
            return None
        return 100.0 * counts.actuated_nontarget / counts.actuated
    if counts.objects < rule.min_count:
        return None
    return 100.0 * counts.by_class.get(rule.class_name, 0) / counts.objects


def describe(rule: Rule, value: float, verb: str = "ejected") -> str:
    """One line for people: what was measured, the value, the threshold and the window."""
    threshold, _clear, _unit, _above = threshold_of(rule)
    window = format_duration_s(rule.window_min * 60)
    if isinstance(rule, ThroughputRule):
        return f"throughput {value:.1f} per min below {threshold:g} per min (objects over {window})"
    if isinstance(rule, ContaminationRule):
        return f"contamination share {value:.1f} % above {threshold:g} % (non-target classes among {verb} objects, over {window})"
    return f"{rule.class_name} share {value:.1f} % above {threshold:g} % (of all objects, over {window})"


@dataclass
class _State:
    active: Alert | None = None
    value: float | None = None
    t_eval_ns: int | None = None


class AlertEvaluator:
    """The rules of ``config`` with their state; step it with :meth:`evaluate` at clock multiples of ``config.step_s``.

    Args:
        config: the ``analytics.alerts`` section.
        targets: the target classes (``policy.targets``).
        t_begin_ns: when the data starts (service start, or a report's first object): a window reaching back before
            it is not judged, so a line that just started is not "below throughput".
        verb: ``ejected`` for air jets, ``picked`` for a robot (in messages).
    """

    def __init__(self, config: AlertsConfig, *, targets: Iterable[str], t_begin_ns: int, verb: str = "ejected") -> None:
        self.config = config
        self.targets = tuple(targets)
        self._target_changes: tuple[tuple[int, tuple[str, ...]], ...] = ()
        self.t_begin_ns = int(t_begin_ns)
        self.verb = verb
        self._state: dict[str, _State] = {r.rule_name: _State() for r in config.rules}

    @property
    def step_ns(self) -> int:
        return self.config.step_s * NS_PER_S

    @property
    def max_window_ns(self) -> int:
        """The longest rule window (ns): how far back events are needed for one evaluation."""
        return max((round(r.window_min * 60 * NS_PER_S) for r in self.config.rules), default=0)

    @property
    def classes(self) -> tuple[str, ...]:
        """Classes whose counts the rules need (give them to :class:`EventIndex`)."""
        return tuple(sorted({r.class_name for r in self.config.rules if isinstance(r, ClassShareRule)}))

    def index(self, events: Iterable[TrackEvent]) -> EventIndex:
        """An :class:`EventIndex` of ``events`` fit for :meth:`evaluate`."""
        return EventIndex(events, self.targets, self.classes, self._target_changes)

    def set_targets(self, targets: Iterable[str], t_from_ns: int) -> None:
        """The line's targets changed (a live reload) at ``t_from_ns`` (wall-clock epoch ns): events finished from then
        on are judged against ``targets``, earlier ones against the targets of their time."""
        self._target_changes = (*self._target_changes, (int(t_from_ns), tuple(targets)))

    def adopt(self, alerts: Iterable[Alert]) -> list[Alert]:
        """Continue alerts left open by a previous run (same rule names); returns those whose rule no longer exists."""
        orphans = []
        for a in alerts:
            st = self._state.get(a.rule)
            if st is None or not a.active:
                orphans.append(a)
            else:
                st.active = a
        return orphans

    def evaluate(self, t_eval_ns: int, index: EventIndex) -> list[Alert]:
        """Judge every rule on the window ending at ``t_eval_ns``; returns alerts raised, worsened or cleared.

        ``index`` must hold every event of ``[t_eval_ns - max_window_ns, t_eval_ns)``.
        """
        changes: list[Alert] = []
        for rule in self.config.rules:
            st = self._state[rule.rule_name]
            window_ns = round(rule.window_min * 60 * NS_PER_S)
            t0 = t_eval_ns - window_ns
            if t0 < self.t_begin_ns:
                continue
            value = measure(rule, index.window(t0, t_eval_ns), window_ns / NS_PER_S)
            st.value, st.t_eval_ns = value, t_eval_ns
            if value is None:
                continue  # too few objects to judge: the alert (if any) stays as it is
            threshold, clear_at, unit, above = threshold_of(rule)
            past = value > threshold if above else value < threshold
            back = value <= clear_at if above else value >= clear_at
            if past and st.active is None:
                st.active = Alert(rule.rule_name, rule.kind, t_eval_ns, None, value, threshold, unit, window_ns / NS_PER_S,
                                  describe(rule, value, self.verb))
                changes.append(st.active)
            elif st.active is not None and not back:
                if value > st.active.value if above else value < st.active.value:
                    st.active = dataclasses.replace(st.active, value=value, message=describe(rule, value, self.verb))
                    changes.append(st.active)
            elif st.active is not None:
                changes.append(dataclasses.replace(st.active, t_end_ns=t_eval_ns))
                st.active = None
        return changes

    def active(self) -> list[Alert]:
        """The alerts that last now, by rule order."""
        return [st.active for st in self._state.values() if st.active is not None]

    def gauges(self) -> list[GaugeSample]:
        """Gauge values for ``/metrics``: per rule, whether it is active, its last value (NaN: not judged) and threshold."""
        out: list[GaugeSample] = []
        for rule in self.config.rules:
            st = self._state[rule.rule_name]
            threshold, _clear, unit, _above = threshold_of(rule)
            labels = (("rule", rule.rule_name), ("kind", rule.kind), ("unit", unit))
            out.append(GaugeSample("sorter_alert_active", "1 while the alert rule's value is past its threshold", labels,
                                   1.0 if st.active is not None else 0.0))
            out.append(GaugeSample("sorter_alert_value", "the alert rule's last value (NaN: not judged yet or too few objects)",
                                   labels, math.nan if st.value is None else float(st.value)))
            out.append(GaugeSample("sorter_alert_threshold", "the alert rule's threshold", labels, float(threshold)))
        return out


def evaluation_times_ns(t_from_ns: int, t_to_ns: int, step_s: int) -> list[int]:
    """Clock multiples of ``step_s`` (epoch, UTC) in ``[t_from_ns, t_to_ns]``."""
    step = step_s * NS_PER_S
    first = -(-t_from_ns // step) * step
    return list(range(first, t_to_ns + 1, step)) if first <= t_to_ns else []


def evaluate_history(
    config: AlertsConfig,
    events: Sequence[TrackEvent],
    *,
    targets: Iterable[str],
    t_begin_ns: int,
    t_end_ns: int,
    verb: str = "ejected",
) -> list[Alert]:
    """Every alert the rules raise over ``[t_begin_ns, t_end_ns]``, oldest first.

    An alert still past its threshold at ``t_end_ns`` keeps ``t_end_ns=None`` (it lasted to the end of the data).
    """
    ev = AlertEvaluator(config, targets=targets, t_begin_ns=t_begin_ns, verb=verb)
    if not config.rules:
        return []
    index = ev.index(events)
    final: dict[tuple[str, int], Alert] = {}
    for t in evaluation_times_ns(t_begin_ns, t_end_ns, config.step_s):
        for a in ev.evaluate(t, index):
            final[(a.rule, a.t_start_ns)] = a
    return sorted(final.values(), key=lambda a: (a.t_start_ns, a.rule))
