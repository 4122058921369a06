"""Alert rules over synthetic event streams, hand-computed: raised, worsened, cleared; the schema's errors; gauges."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from sorter.analytics.alert_eval import AlertEvaluator, evaluate_history, evaluation_times_ns
from sorter.analytics.alerts import AlertsConfig
from sorter.analytics.events import TrackEvent

S = 1_000_000_000
T0 = 1_800_000_000 * S  # 2027-01-15T08:00:00Z, on the minute


def ev(t_s: float, cls: str, decision: str, k: int = 0) -> TrackEvent:
    return TrackEvent(T0 + round(t_s * S), k, k, k, cls, 0.9, 100.0, 50.0, 0.0, 0.0, 5, decision,
                      (k,) if decision in ("eject", "pick") else (), "executed" if decision == "eject" else None)


def rules(*rs: dict[str, Any], step_s: int = 60) -> AlertsConfig:
    return AlertsConfig.model_validate({"step_s": step_s, "rules": list(rs)})


def contamination_stream() -> list[TrackEvent]:
    """An ejection every 10 s (at 5, 15, ... s) for an hour; from 1200 s to 2100 s every third one (k % 3 == 0) is film."""
    out = []
    for k in range(360):
        t = 10 * k + 5
        out.append(ev(t, "film" if 1200 <= t < 2100 and k % 3 == 0 else "pet_bottle", "eject", k))
    return out


def at(t_s: int) -> int:
    return T0 + t_s * S


def test_contamination_raised_and_cleared_at_the_hand_computed_steps() -> None:
    cfg = rules({"kind": "contamination_share", "above_pct": 10, "window_min": 5})
    alerts = evaluate_history(cfg, contamination_stream(), targets=("pet_bottle",), t_begin_ns=T0, t_end_ns=at(3600))
    # window [t - 300 s, t), 30 ejections. t = 1260: films k = 120, 123 -> 2/30 = 6.7 %; t = 1320: k = 120..129 -> 4/30
    # = 13.3 % > 10 %: raised. Worst: a window inside [1200, 2100): 10/30 = 33.3 %. t = 2280: films at k = 198..207
    # -> 4/30 = 13.3 %; t = 2340: k = 204, 207 -> 2/30 = 6.7 %: cleared.
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.rule, a.kind, a.t_start_ns, a.t_end_ns) == ("contamination_share", "contamination_share", at(1320), at(2340))
    assert a.value == pytest.approx(100 / 3) and a.threshold == 10 and a.unit == "%" and a.window_s == 300
    assert a.message == ("contamination share 33.3 % above 10 % (non-target classes among ejected objects, over 5 min)")


def test_a_clear_level_below_the_threshold_holds_the_alert_longer() -> None:
    cfg = rules({"kind": "contamination_share", "above_pct": 10, "clear_below_pct": 5, "window_min": 5})
    (a,) = evaluate_history(cfg, contamination_stream(), targets=("pet_bottle",), t_begin_ns=T0, t_end_ns=at(3600))
    assert a.t_start_ns == at(1320) and a.t_end_ns == at(2400)  # 6.7 % at 2340 is above 5 %; 0 % at 2400


def test_throughput_below_while_the_line_stops() -> None:
    # an object every 2 s (30 per minute), none from 1800 s to 2400 s
    events = [ev(t, "paper", "not_target", t) for t in range(1, 3600, 2) if not 1800 <= t < 2400]
    cfg = rules({"kind": "throughput", "below_per_min": 10, "window_min": 5})
    (a,) = evaluate_history(cfg, events, targets=("pet_bottle",), t_begin_ns=T0, t_end_ns=at(3600))
    # t = 1980: objects 1681..1799 = 60 in 5 min = 12/min; t = 2040: 1741..1799 = 30 = 6/min: raised.
    # t = 2460: 2401..2459 = 30 = 6/min; t = 2520: 2401..2519 = 60 = 12/min: cleared. Worst: 0 (t = 2100 ... 2400).
    assert (a.t_start_ns, a.t_end_ns, a.value, a.unit) == (at(2040), at(2520), 0.0, "per min")
    assert a.message == "throughput 0.0 per min below 10 per min (objects over 5 min)"


def test_nothing_is_judged_before_a_whole_window_of_data() -> None:
    events = [ev(t, "paper", "not_target", t) for t in range(1, 3600, 2)]
    cfg = rules({"kind": "throughput", "below_per_min": 10, "window_min": 5})
    # the line starts at T0 + 600 s: windows reaching back before it would count the time before the start
    late = [e for e in events if e.t_wall_ns >= at(600)]
    assert evaluate_history(cfg, late, targets=(), t_begin_ns=at(600), t_end_ns=at(3600)) == []
    # judged from T0 (no data before 600 s) the first windows are empty: that is a stopped line
    (a,) = evaluate_history(cfg, late, targets=(), t_begin_ns=T0, t_end_ns=at(3600))
    assert a.t_start_ns == at(300)


def test_too_few_objects_are_not_judged() -> None:
    # a quiet line: one ejected film and two bottles in ten minutes is not 33 % contamination
    events = [ev(100, "film", "eject", 1), ev(200, "pet_bottle", "eject", 2), ev(300, "pet_bottle", "eject", 3)]
    cfg = rules({"kind": "contamination_share", "above_pct": 10, "window_min": 10})
    assert evaluate_history(cfg, events, targets=("pet_bottle",), t_begin_ns=T0, t_end_ns=at(1800)) == []
    cfg3 = rules({"kind": "contamination_share", "above_pct": 10, "window_min": 10, "min_count": 3})
    (a,) = evaluate_history(cfg3, events, targets=("pet_bottle",), t_begin_ns=T0, t_end_ns=at(1800))
    assert a.value == pytest.approx(100 / 3) and a.t_start_ns == at(600)
    assert a.t_end_ns is None  # never judged again after the window emptied: it lasts to the end of the data


def test_class_share_and_an_alert_lasting_to_the_end() -> None:
    # 40 objects a minute; from 1800 s on, half of them are film
    events = [ev(t * 1.5, "film" if t * 1.5 >= 1800 and t % 2 else "paper", "not_target", t) for t in range(2400)]
    cfg = rules({"kind": "class_share", "class_name": "film", "above_pct": 20, "window_min": 10})
    (a,) = evaluate_history(cfg, events, targets=("pet_bottle",), t_begin_ns=T0, t_end_ns=at(3600))
    # window [t - 600, t) holds 400 objects; film from 1800 s is one in two: share > 20 % once more than 80 films,
    # i.e. more than 240 s of film: first at t = 2100 (300 s -> 100 films = 25 %)
    assert a.rule == "class_share:film" and a.t_start_ns == at(2100) and a.t_end_ns is None
    assert a.value == pytest.approx(50.0)
    assert a.message == "film share 50.0 % above 20 % (of all objects, over 10 min)"


def test_stepped_live_and_history_agree_and_gauges_follow() -> None:
    cfg = rules({"kind": "contamination_share", "above_pct": 10, "window_min": 5},
                {"kind": "throughput", "below_per_min": 1, "window_min": 5, "name": "belt stopped"})
    events = contamination_stream()
    live = AlertEvaluator(cfg, targets=("pet_bottle",), t_begin_ns=T0)
    gauges = {(g.name, g.labels[0][1]): g.value for g in live.gauges()}
    assert math.isnan(gauges[("sorter_alert_value", "contamination_share")])  # not judged yet
    assert gauges[("sorter_alert_threshold", "belt stopped")] == 1.0
    changes = []
    for t in evaluation_times_ns(T0, at(1500), 60):
        window = [e for e in events if t - live.max_window_ns <= e.t_wall_ns < t]  # only what a live query returns
        changes += live.evaluate(t, live.index(window))
    assert [c.t_start_ns for c in changes][:1] == [at(1320)] and changes[-1].t_end_ns is None
    assert [a.rule for a in live.active()] == ["contamination_share"]
    gauges = {(g.name, g.labels[0][1]): g.value for g in live.gauges()}
    assert gauges[("sorter_alert_active", "contamination_share")] == 1.0
    assert gauges[("sorter_alert_active", "belt stopped")] == 0.0
    assert gauges[("sorter_alert_value", "contamination_share")] == pytest.approx(100 / 3)  # t = 1500: 10 of 30
    assert gauges[("sorter_alert_value", "belt stopped")] == pytest.approx(6.0)  # 30 objects in 5 min
    labels = dict(live.gauges()[0].labels)
    assert labels == {"rule": "contamination_share", "kind": "contamination_share", "unit": "%"}
    history = evaluate_history(cfg, events, targets=("pet_bottle",), t_begin_ns=T0, t_end_ns=at(1500))
    assert [(a.rule, a.t_start_ns, a.value) for a in history] == [(a.rule, a.t_start_ns, a.value) for a in live.active()]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"rules": [{"kind": "contamination", "above_pct": 5}]}, "contamination_share"),
        ({"rules": [{"kind": "class_share", "class_name": "pet", "above_pct": 5}]}, "unknown class 'pet'"),
        ({"rules": [{"kind": "throughput", "below_per_min": 10, "clear_above_per_min": 5}]},
         r"clear_above_per_min \(5\) must be at or above below_per_min \(10\)"),
        ({"rules": [{"kind": "contamination_share", "above_pct": 5, "clear_below_pct": 8}]}, "must be at or below above_pct"),
        ({"rules": [{"kind": "throughput", "below_per_min": 10}, {"kind": "throughput", "below_per_min": 5}]},
         "two alert rules are named throughput"),
        ({"step_s": 7}, "step_s 7 does not divide an hour"),
        ({"rules": [{"kind": "throughput", "below_per_min": 10, "windw_min": 5}]}, "windw_min"),
        ({"rules": [{"kind": "contamination_share", "above_pct": 150}]}, "less than 100"),
    ],
)
def test_bad_sections_name_the_problem(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertsConfig.model_validate(section)


def test_names_default_from_the_kind() -> None:
    cfg = rules({"kind": "class_share", "class_name": "film", "above_pct": 20},
                {"kind": "class_share", "class_name": "paper", "above_pct": 20})
    assert [r.rule_name for r in cfg.rules] == ["class_share:film", "class_share:paper"]
    assert AlertsConfig().rules == () and AlertsConfig().step_s == 60
