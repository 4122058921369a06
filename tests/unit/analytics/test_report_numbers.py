"""Report arithmetic, hand-computed: rates over the running time, clock-aligned buckets, estimates that say n/a, the verb."""

from __future__ import annotations

import pytest

from sorter.analytics.events import TrackEvent
from sorter.analytics.report import build_report, line_verb, running_span_ns
from sorter.analytics.timebins import format_iso, resolve_zone
from sorter.analytics.wording import format_range, summary

S = 1_000_000_000
T0 = 1_800_000_000 * S  # 2027-01-15T08:00:00Z
DAY = 86_400 * S


def ev(t_s: float, cls: str = "paper", decision: str = "not_target", outcome: str | None = None, conf: float = 0.8,
       k: int = 0) -> TrackEvent:
    return TrackEvent(T0 + round(t_s * S), k, k + 1, k, cls, conf, 100.0, 50.0, 0.0, -10.0, 4, decision,
                      (k,) if decision in ("eject", "pick") else (), outcome)


def test_a_one_minute_run_is_not_averaged_over_the_day() -> None:
    # 61 objects, one a second from 08:30:00 to 08:31:00, in a report of the whole day
    events = [ev(1800 + i, k=i) for i in range(61)]
    r = build_report(events, t_start_ns=T0 - 8 * 3600 * S, t_end_ns=T0 + 16 * 3600 * S, bucket_s=3600)
    # running time: the 60 s span plus half the 1 s mean gap at each end = 61 s; 61 objects / 61 s = 60 per minute
    assert r.running_s == pytest.approx(61.0)
    assert r.throughput_per_min == pytest.approx(60.0)
    assert 61 / (24 * 60) < 0.05  # what averaging over 24 h would have said
    # one clock-aligned bucket, 08:00 to 09:00, that ran for 61 s of its hour
    assert [(format_iso(b.t_start_ns, r.zone), format_iso(b.t_end_ns, r.zone)) for b in r.buckets] == [
        ("2027-01-15T08:00:00+00:00", "2027-01-15T09:00:00+00:00")]
    assert r.buckets[0].running_s == pytest.approx(61.0) and r.buckets[0].throughput_per_min == pytest.approx(60.0)


def test_rate_is_n_minus_one_over_the_span_and_buckets_share_the_running_time() -> None:
    events = [ev(t, k=i) for i, t in enumerate((5, 15, 25, 65, 70))]
    r = build_report(events, t_start_ns=T0, t_end_ns=T0 + 120 * S, bucket_s=60)
    # span 65 s, mean gap 65/4 = 16.25 s: running from 5 - 8.125 (clipped to 0) to 70 + 8.125 = 78.125 s
    assert r.running_start_ns == T0 and r.running_end_ns == T0 + 78_125_000_000
    assert r.throughput_per_min == pytest.approx(5 / 78.125 * 60)
    assert [b.total for b in r.buckets] == [3, 2]
    assert [b.running_s for b in r.buckets] == pytest.approx([60.0, 18.125])
    assert r.buckets[0].throughput_per_min == pytest.approx(3.0)
    assert r.buckets[1].throughput_per_min == pytest.approx(2 / 18.125 * 60)
    # unclipped, the rate is exactly (n - 1) / span
    later = [ev(t + 100, k=i) for i, t in enumerate((5, 15, 25, 65, 70))]
    r2 = build_report(later, t_start_ns=T0, t_end_ns=T0 + 300 * S, bucket_s=60)
    assert r2.throughput_per_min == pytest.approx(4 / 65 * 60)


def test_one_object_has_no_rate_and_no_objects_no_buckets() -> None:
    r = build_report([ev(10)], t_start_ns=T0, t_end_ns=T0 + DAY)
    assert r.n_objects == 1 and r.throughput_per_min is None and len(r.buckets) == 1
    assert running_span_ns([T0], T0, T0 + DAY) == (T0, T0)
    empty = build_report([], t_start_ns=T0, t_end_ns=T0 + DAY)
    assert empty.buckets == () and empty.first_ns is None and empty.throughput_per_min is None
    with pytest.raises(ValueError, match="empty"):
        build_report([], t_start_ns=T0, t_end_ns=T0)


def test_estimates_by_hand() -> None:
    events = [
        ev(1, "pet_bottle", "eject", "executed", 0.9, 1),
        ev(2, "pet_bottle", "eject", "late", 0.7, 2),
        ev(3, "paper", "eject", "executed", 0.8, 3),  # a non-target ejected: contamination
        ev(4, "pet_bottle", "skip", None, 0.6, 4),
        ev(5, "pet_bottle", "late", None, 0.6, 5),
        ev(6, "film", "not_target", None, 0.9, 6),
    ]
    t = build_report(events, t_start_ns=T0, t_end_ns=T0 + 60 * S, bucket_s=60, targets=("pet_bottle",)).totals
    assert t.n_actuated == 3 and t.executed == 2 and t.target_decisions == 5
    assert t.recovery_estimate == pytest.approx(2 / 5)
    assert t.contamination_share == pytest.approx(1 / 3)
    assert t.purity_estimate == pytest.approx((0.9 + 0.7) / 3)


def test_nothing_ejected_means_no_purity_not_100_percent() -> None:
    events = [ev(i, "paper", "not_target", k=i) for i in range(10)]
    r = build_report(events, t_start_ns=T0, t_end_ns=T0 + 60 * S, bucket_s=60)
    assert r.totals.purity_estimate is None and r.totals.contamination_share is None
    lines = {s.label: s.value for s in summary(r)}
    assert lines["purity estimate"] == "n/a (nothing ejected)"
    assert lines["contamination share"] == "n/a (nothing ejected)"
    assert lines["recovery estimate"] == "n/a (no target decided)"
    assert "1.0000" not in " ".join(lines.values()) and "100" not in lines["purity estimate"]


def test_robot_lines_pick_and_air_jets_eject() -> None:
    picks = [ev(1, "pet_bottle", "pick", "executed", k=1), ev(2, "paper", k=2)]
    r = build_report(picks, t_start_ns=T0, t_end_ns=T0 + 60 * S, mode="airjet")
    assert r.verb == "picked"
    lines = {s.label: s for s in summary(r)}
    assert "picked" in lines and "ejected" not in lines
    assert lines["picked"].value == "1, of which executed by the controller 1"
    assert "among picked objects" in lines["contamination share"].how
    assert line_verb("robot") == "picked" and line_verb("airjet") == "ejected"
    assert line_verb("robot", [ev(1, decision="eject")]) == "ejected"  # what the store says wins
    nothing = build_report([ev(1)], t_start_ns=T0, t_end_ns=T0 + 60 * S, mode="robot")
    assert {s.label: s.value for s in summary(nothing)}["purity estimate"] == "n/a (nothing picked)"


def test_buckets_follow_the_local_clock() -> None:
    zone, label = resolve_zone("Europe/Berlin")  # 08:17 UTC is 09:17 CET: the hour bucket starts at 09:00 CET
    events = [ev(17 * 60 + i * 30, k=i) for i in range(200)]  # 08:17:00 to 09:56:30 UTC
    r = build_report(events, t_start_ns=T0, t_end_ns=T0 + 4 * 3600 * S, bucket_s=3600, zone=zone, zone_label=label)
    assert [format_iso(b.t_start_ns, zone) for b in r.buckets] == ["2027-01-15T09:00:00+01:00", "2027-01-15T10:00:00+01:00"]
    assert [b.total for b in r.buckets] == [86, 114]  # 09:17:00..09:59:30 CET is 86 objects at 30 s
    assert format_range(r.t_start_ns, r.t_end_ns, zone) == "2027-01-15 09:00 to 13:00 CET"
    assert sum(b.total for b in r.buckets) == r.n_objects == 200


def test_period_words() -> None:
    zone, _ = resolve_zone("UTC")
    assert format_range(T0, T0 + DAY, zone) == "2027-01-15 08:00 to 2027-01-16 08:00 UTC"
    assert format_range(T0 + 5 * S, T0 + 65 * S, zone) == "2027-01-15 08:00:05 to 08:01:05 UTC"


def test_unaligned_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="does not start at the same clock time"):
        build_report([ev(1)], t_start_ns=T0, t_end_ns=T0 + DAY, bucket_s=7 * 60)


def test_default_buckets_hold_about_ten_objects_and_run_edges_have_no_rate() -> None:
    events = [ev(1800 + i, k=i) for i in range(61)]  # one a second, 08:30:00 to 08:31:00
    r = build_report(events, t_start_ns=T0, t_end_ns=T0 + DAY)
    assert r.bucket_s == 10  # 48 buckets over 61 s would be 2 s with 2 objects each
    assert [format_iso(b.t_start_ns, r.zone)[11:19] for b in r.buckets][::3] == ["08:30:00", "08:30:30", "08:31:00"]
    rates = [r.bucket_throughput_per_min(b) for b in r.buckets]
    # the last bucket holds the 08:31:00 object and ran 0.5 s (half a gap): 120 per minute would be a spike
    assert rates[:-1] == pytest.approx([60.0] * 6) and rates[-1] is None and r.buckets[-1].throughput_per_min == 120.0
