"""Clock-aligned time buckets in a named time zone, and how times and durations are written in reports (pure).

A report's buckets start where a person expects them to: a 1 h bucket on the
hour, a 15 min bucket at :00, :15, :30 and :45, a 1 day bucket at midnight, a
7 day bucket on Monday at midnight, all on the wall clock of the report's time
zone (UTC unless the report asks for another). Only sizes that tile the day
(1 s ... 12 h) or whole days are accepted, so every bucket edge falls on the
same clock positions every day.

Edges are computed on the wall clock and mapped back to absolute time, so on
the days daylight-saving time starts or ends a bucket may be an hour shorter
or longer: a 1 h bucket from 01:00 to 03:00 CEST is one hour long when 02:00
does not exist, and the repeated hour of an autumn night gets two buckets.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NS_PER_S = 1_000_000_000
DAY_S = 86_400
#: Bucket sizes offered when none is asked for (seconds): each tiles the day or is whole days.
NICE_BUCKETS_S: tuple[int, ...] = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, DAY_S, 7 * DAY_S,
)
MAX_BUCKETS = 20_000


class TimeZoneError(ValueError):
    """A time zone name that is not known."""


def resolve_zone(name: str) -> tuple[tzinfo, str]:
    """The time zone called ``name`` and the label reports print for it.

    Args:
        name: ``UTC``, an IANA name (``Europe/Berlin``), or ``local`` for this host's zone (``TZ``, else ``/etc/localtime``).

    Returns:
        ``(zone, label)``; the label is the IANA name where one is known.

    Raises:
        TimeZoneError: the name is not a known zone; the message says what to write instead.
    """
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC, "UTC"
    if text.lower() == "local":
        env = os.environ.get("TZ", "").lstrip(":")
        if env:
            try:
                return ZoneInfo(env), env
            except (ZoneInfoNotFoundError, ValueError):
                pass
        link = Path("/etc/localtime")
        if link.exists():
            target = str(link.resolve())
            key = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "local"
            with link.open("rb") as f:
                return ZoneInfo.from_file(f, key=key), key
        zone = datetime.now().astimezone().tzinfo
        return (zone or UTC), "local"
    try:
        return ZoneInfo(text), text
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeZoneError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or America/Chicago, UTC, "
            "or local (this computer's zone)"
        ) from None


def check_bucket_s(bucket_s: float) -> int:
    """``bucket_s`` as whole seconds, if it can be aligned to the clock.

    Raises:
        ValueError: not whole seconds, or neither tiles the day (1 s ... 12 h) nor is a whole number of days.
    """
    if bucket_s <= 0 or bucket_s != int(bucket_s):
        raise ValueError(f"a bucket of {bucket_s:g} s cannot start on the clock: use whole seconds, e.g. 1m, 15m, 1h, 1d")
    b = int(bucket_s)
    if DAY_S % b and b % DAY_S:
        raise ValueError(
            f"a bucket of {format_duration_s(b)} does not start at the same clock time every day: use one that divides "
            "a day (1m, 2m, 5m, 10m, 15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h) or whole days (1d, 7d)"
        )
    return b


def _localize(wall: datetime, zone: tzinfo, t_s: int) -> int:
    """The latest absolute second (<= ``t_s``) whose wall clock in ``zone`` reads ``wall`` (naive), or ``t_s``."""
    found = [int(wall.replace(tzinfo=zone, fold=fold).timestamp()) for fold in (0, 1)]
    fits = [c for c in found if c <= t_s]
    return max(fits) if fits else t_s


def floor_to_bucket_ns(t_ns: int, bucket_s: int, zone: tzinfo) -> int:
    """The start of the clock-aligned bucket of ``bucket_s`` seconds holding the instant ``t_ns`` (epoch ns)."""
    t_s = t_ns // NS_PER_S
    wall = datetime.fromtimestamp(t_s, zone).replace(tzinfo=None)
    if bucket_s % DAY_S == 0:
        days = bucket_s // DAY_S
        ordinal = wall.date().toordinal()  # day 1 is Monday 0001-01-01: 7 d buckets start on Mondays
        day = datetime.fromordinal(ordinal - (ordinal - 1) % days)
        floored = day
    else:
        seconds_of_day = wall.hour * 3600 + wall.minute * 60 + wall.second
        floored = wall.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
            seconds=seconds_of_day - seconds_of_day % bucket_s
        )
    return _localize(floored, zone, t_s) * NS_PER_S


def bucket_edges_ns(t_start_ns: int, t_end_ns: int, bucket_s: float, zone: tzinfo) -> list[int]:
    """Edges of the clock-aligned buckets that cover ``[t_start_ns, t_end_ns)``: ``n + 1`` edges for ``n`` buckets.

    The first edge is at or before ``t_start_ns``, the last at or after ``t_end_ns``.

    Raises:
        ValueError: an unaligned bucket size (see :func:`check_bucket_s`), an empty span, or more than
            :data:`MAX_BUCKETS` buckets.
    """
    b = check_bucket_s(bucket_s)
    if t_end_ns <= t_start_ns:
        raise ValueError("the report period is empty: the end must be after the start")
    if (t_end_ns - t_start_ns) / (b * NS_PER_S) > MAX_BUCKETS:
        raise ValueError(
            f"{format_duration_s((t_end_ns - t_start_ns) / NS_PER_S)} in buckets of {format_duration_s(b)} is more than "
            f"{MAX_BUCKETS} buckets: ask for a larger bucket"
        )
    slack_ns = 3 * 3600 * NS_PER_S if b % DAY_S == 0 else 0  # days are 23 to 25 h long around DST changes
    edges = [floor_to_bucket_ns(t_start_ns, b, zone)]
    while edges[-1] < t_end_ns:
        nxt = floor_to_bucket_ns(edges[-1] + b * NS_PER_S + slack_ns, b, zone)
        edges.append(nxt if nxt > edges[-1] else edges[-1] + b * NS_PER_S)
    return edges


def nice_bucket_s(span_s: float, target_buckets: int = 48, at_least_s: float = 0.0) -> int:
    """The smallest bucket of :data:`NICE_BUCKETS_S` that covers ``span_s`` in at most about ``target_buckets`` buckets
    and is at least ``at_least_s`` long."""
    for b in NICE_BUCKETS_S:
        if span_s / b <= target_buckets and b >= at_least_s:
            return b
    return NICE_BUCKETS_S[-1]


def to_datetime(t_ns: int, zone: tzinfo) -> datetime:
    """Epoch ns as an aware datetime in ``zone`` (microsecond precision)."""
    return datetime.fromtimestamp(t_ns // 1000 / 1e6, zone)


def format_time(t_ns: int, zone: tzinfo, *, date: bool = True, seconds: bool = True) -> str:
    """``2027-01-15 09:00:00 CET``: wall clock in ``zone`` with the zone's abbreviation for that instant."""
    dt = to_datetime(t_ns, zone)
    fmt = ("%Y-%m-%d " if date else "") + ("%H:%M:%S" if seconds else "%H:%M")
    return f"{dt.strftime(fmt)} {dt.tzname() or ''}".rstrip()


def format_iso(t_ns: int, zone: tzinfo) -> str:
    """ISO 8601 with the UTC offset (``2027-01-15T09:00:00+01:00``), for files read by programs."""
    return to_datetime(t_ns, zone).isoformat(timespec="seconds" if t_ns % NS_PER_S == 0 else "milliseconds")


def format_duration_s(seconds: float) -> str:
    """A duration for people: ``45 s``, ``1 min 30 s``, ``15 min``, ``2 h 05 min``, ``1 day``, ``3 days 4 h``."""
    s = round(seconds)
    if seconds < 60:
        return f"{seconds:.3g} s" if seconds < 10 and seconds != s else f"{s} s"
    if s < 3600:
        m, rest = divmod(s, 60)
        return f"{m} min" + (f" {rest} s" if rest else "")
    if s < DAY_S:
        h, m = divmod(round(s / 60), 60)
        return f"{h} h" + (f" {m:02d} min" if m else "")
    d, h = divmod(round(s / 3600), 24)
    return f"{d} day{'s' if d > 1 else ''}" + (f" {h} h" if h else "")
