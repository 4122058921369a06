"""Clock-aligned buckets, hand-computed: UTC, a half-hour zone, both daylight-saving changes, days and weeks."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from sorter.analytics.timebins import (
    TimeZoneError,
    bucket_edges_ns,
    check_bucket_s,
    floor_to_bucket_ns,
    format_duration_s,
    format_iso,
    format_time,
    nice_bucket_s,
    resolve_zone,
)


def ns(text: str) -> int:
    """An ISO time with its offset -> epoch ns."""
    return round(datetime.fromisoformat(text).timestamp()) * 1_000_000_000


def iso(edges: list[int], zone_name: str) -> list[str]:
    zone, _ = resolve_zone(zone_name)
    return [format_iso(e, zone) for e in edges]


def test_one_hour_buckets_start_on_the_hour_in_utc() -> None:
    edges = bucket_edges_ns(ns("2027-01-15T08:17:42+00:00"), ns("2027-01-15T11:05:00+00:00"), 3600, UTC)
    assert iso(edges, "UTC") == ["2027-01-15T08:00:00+00:00", "2027-01-15T09:00:00+00:00", "2027-01-15T10:00:00+00:00",
                                 "2027-01-15T11:00:00+00:00", "2027-01-15T12:00:00+00:00"]


def test_quarter_hours_and_an_end_on_an_edge() -> None:
    edges = bucket_edges_ns(ns("2027-01-15T08:14:59+00:00"), ns("2027-01-15T08:45:00+00:00"), 900, UTC)
    assert iso(edges, "UTC") == ["2027-01-15T08:00:00+00:00", "2027-01-15T08:15:00+00:00", "2027-01-15T08:30:00+00:00",
                                 "2027-01-15T08:45:00+00:00"]


def test_hours_start_on_the_local_hour_in_a_half_hour_zone() -> None:
    zone, label = resolve_zone("Asia/Kolkata")  # UTC+05:30: the local hour starts at :30 UTC
    assert label == "Asia/Kolkata"
    edges = bucket_edges_ns(ns("2027-01-15T08:17:00+00:00"), ns("2027-01-15T09:40:00+00:00"), 3600, zone)
    assert [format_iso(e, UTC) for e in edges] == ["2027-01-15T07:30:00+00:00", "2027-01-15T08:30:00+00:00",
                                                   "2027-01-15T09:30:00+00:00", "2027-01-15T10:30:00+00:00"]
    assert iso(edges, "Asia/Kolkata")[0] == "2027-01-15T13:00:00+05:30"


def test_spring_forward_the_missing_hour_has_no_bucket() -> None:
    zone, _ = resolve_zone("Europe/Berlin")  # 2027-03-28 01:00 UTC: 02:00 CET becomes 03:00 CEST
    edges = bucket_edges_ns(ns("2027-03-28T00:30:00+01:00"), ns("2027-03-28T04:30:00+02:00"), 3600, zone)
    assert iso(edges, "Europe/Berlin") == ["2027-03-28T00:00:00+01:00", "2027-03-28T01:00:00+01:00",
                                           "2027-03-28T03:00:00+02:00", "2027-03-28T04:00:00+02:00",
                                           "2027-03-28T05:00:00+02:00"]
    assert {b - a for a, b in itertools.pairwise(edges)} == {3600 * 10**9}  # every bucket one real hour


def test_fall_back_the_repeated_hour_gets_two_buckets() -> None:
    zone, _ = resolve_zone("Europe/Berlin")  # 2027-10-31 01:00 UTC: 03:00 CEST becomes 02:00 CET
    edges = bucket_edges_ns(ns("2027-10-31T01:30:00+02:00"), ns("2027-10-31T03:30:00+01:00"), 3600, zone)
    assert iso(edges, "Europe/Berlin") == ["2027-10-31T01:00:00+02:00", "2027-10-31T02:00:00+02:00",
                                           "2027-10-31T02:00:00+01:00", "2027-10-31T03:00:00+01:00",
                                           "2027-10-31T04:00:00+01:00"]
    assert format_time(edges[1], zone) == "2027-10-31 02:00:00 CEST" and format_time(edges[2], zone).endswith("CET")


def test_two_hour_buckets_across_both_changes_stay_on_even_local_hours() -> None:
    zone, _ = resolve_zone("Europe/Berlin")
    spring = bucket_edges_ns(ns("2027-03-27T23:00:00+01:00"), ns("2027-03-28T05:00:00+02:00"), 7200, zone)
    assert iso(spring, "Europe/Berlin") == ["2027-03-27T22:00:00+01:00", "2027-03-28T00:00:00+01:00",
                                            "2027-03-28T03:00:00+02:00", "2027-03-28T04:00:00+02:00",
                                            "2027-03-28T06:00:00+02:00"]  # 02:00 does not exist: the bucket ends at 03:00
    autumn = bucket_edges_ns(ns("2027-10-31T00:30:00+02:00"), ns("2027-10-31T04:30:00+01:00"), 7200, zone)
    assert iso(autumn, "Europe/Berlin") == ["2027-10-31T00:00:00+02:00", "2027-10-31T02:00:00+02:00",
                                            "2027-10-31T02:00:00+01:00", "2027-10-31T04:00:00+01:00",
                                            "2027-10-31T06:00:00+01:00"]


def test_days_start_at_local_midnight_and_the_spring_day_has_23_hours() -> None:
    zone, _ = resolve_zone("Europe/Berlin")
    edges = bucket_edges_ns(ns("2027-03-27T10:00:00+01:00"), ns("2027-03-29T10:00:00+02:00"), 86400, zone)
    assert iso(edges, "Europe/Berlin") == ["2027-03-27T00:00:00+01:00", "2027-03-28T00:00:00+01:00",
                                           "2027-03-29T00:00:00+02:00", "2027-03-30T00:00:00+02:00"]
    assert (edges[2] - edges[1]) // 10**9 == 23 * 3600


def test_weeks_start_on_monday() -> None:
    edges = bucket_edges_ns(ns("2027-01-15T12:00:00+00:00"), ns("2027-01-20T00:00:00+00:00"), 7 * 86400, UTC)
    assert iso(edges, "UTC") == ["2027-01-11T00:00:00+00:00", "2027-01-18T00:00:00+00:00", "2027-01-25T00:00:00+00:00"]
    assert datetime.fromtimestamp(edges[0] / 1e9, UTC).strftime("%A") == "Monday"


def test_floor_of_an_edge_is_the_edge() -> None:
    t = ns("2027-01-15T09:00:00+00:00")
    assert floor_to_bucket_ns(t, 3600, UTC) == t and floor_to_bucket_ns(t - 1, 3600, UTC) == t - 3600 * 10**9


def test_bucket_sizes_that_cannot_align_are_refused_with_the_choices() -> None:
    assert check_bucket_s(900.0) == 900
    with pytest.raises(ValueError, match=r"7 min does not start at the same clock time every day.*15m.*1d"):
        check_bucket_s(420)
    with pytest.raises(ValueError, match="1 day 1 h does not start"):
        check_bucket_s(25 * 3600)
    with pytest.raises(ValueError, match="whole seconds"):
        check_bucket_s(1.5)
    with pytest.raises(ValueError, match="more than 20000 buckets"):
        bucket_edges_ns(0, 86400 * 10**9, 1, UTC)


def test_zone_names() -> None:
    assert resolve_zone("utc") == (UTC, "UTC")
    zone, label = resolve_zone("local")
    assert zone is not None and label
    with pytest.raises(TimeZoneError, match=r"unknown time zone 'Europe/Berln'.*Europe/Berlin"):
        resolve_zone("Europe/Berln")


def test_default_bucket_sizes_and_durations_in_words() -> None:
    assert nice_bucket_s(61) == 2 and nice_bucket_s(3600) == 120 and nice_bucket_s(86400) == 1800
    assert nice_bucket_s(10**9) == 7 * 86400
    assert [format_duration_s(s) for s in (0.5, 45, 61, 900, 3600, 7500, 86400, 3 * 86400 + 4 * 3600)] == [
        "0.5 s", "45 s", "1 min 1 s", "15 min", "1 h", "2 h 05 min", "1 day", "3 days 4 h"]
