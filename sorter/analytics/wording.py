"""A report in words: the period, the summary lines and the alert lines that every output format prints (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from sorter.analytics.alerts import Alert
from sorter.analytics.report import Report
from sorter.analytics.timebins import NS_PER_S, format_duration_s, format_time, to_datetime


def pct(x: float | None, why_none: str = "") -> str:
    """``12.3 %``, or ``n/a`` (with the reason in parentheses) when there is no value."""
    if x is None:
        return f"n/a ({why_none})" if why_none else "n/a"
    return f"{100 * x:.1f} %"


def per_min(x: float | None) -> str:
    return "n/a (fewer than 2 objects)" if x is None else f"{x:.1f} per minute"


def format_range(t0_ns: int, t1_ns: int, zone: tzinfo) -> str:
    """``2027-01-15 08:00 to 09:00 UTC``; the date is repeated only when it changes, seconds only where needed."""
    seconds = t0_ns % (60 * NS_PER_S) != 0 or t1_ns % (60 * NS_PER_S) != 0
    same_day = to_datetime(t0_ns, zone).date() == to_datetime(t1_ns, zone).date()
    start = format_time(t0_ns, zone, seconds=seconds)
    end = format_time(t1_ns, zone, date=not same_day, seconds=seconds)
    d0, d1 = to_datetime(t0_ns, zone).tzname(), to_datetime(t1_ns, zone).tzname()
    if d0 == d1 and start.endswith(f" {d0}"):
        start = start[: -len(d0 or "") - 1]
    return f"{start} to {end}"


def title(r: Report) -> str:
    return f"Line {r.line}: what went by, {format_range(r.t_start_ns, r.t_end_ns, r.zone)}"


def subtitle(r: Report) -> str:
    """Bucket size, zone and the running time, for under the title."""
    zone = f"times in {r.zone_label}"
    if r.first_ns is None or r.last_ns is None:
        return f"no objects in this period; {zone}"
    return (
        f"{format_duration_s(r.bucket_s)} buckets aligned to the clock, {zone}; objects seen from "
        f"{format_time(r.first_ns, r.zone, date=False)} to {format_time(r.last_ns, r.zone, date=False)} "
        f"({format_duration_s(r.running_s)} of running time)"
    )


@dataclass(frozen=True)
class SummaryLine:
    """One summary figure: what, its value, and how it is obtained."""

    label: str
    value: str
    how: str = ""


def summary(r: Report) -> list[SummaryLine]:
    """The report's figures, in the order people read them."""
    t = r.totals
    verb = r.verb
    nothing = f"nothing {verb}"
    targets = ", ".join(r.targets)
    per_class = ", ".join(f"{c} {n}" for c, n in sorted(t.objects.items(), key=lambda kv: -kv[1]))
    lines = [
        SummaryLine("objects", f"{t.total}" + (f" ({per_class})" if per_class else ""), "finished tracks"),
        SummaryLine(
            "throughput", per_min(r.throughput_per_min),
            f"over {format_duration_s(r.running_s)} of running time, not the whole period"
            if r.throughput_per_min is not None else "",
        ),
        SummaryLine(verb, f"{t.n_actuated}, of which executed by the controller {t.executed}",
                    "decided and commanded by the line"),
        SummaryLine("recovery estimate", pct(t.recovery_estimate, "no target decided"),
                    f"executed / objects decided as targets ({t.executed} / {t.target_decisions})"),
        SummaryLine("contamination share", pct(t.contamination_share, nothing),
                    f"non-target classes among {verb} objects ({t.actuated_nontarget} / {t.n_actuated}); targets: {targets}"),
        SummaryLine("purity estimate", pct(t.purity_estimate, nothing),
                    f"each {verb} object of a target class counts with its class confidence; a bale sample measures purity"),
    ]
    if r.alerts:
        active = sum(a.active for a in r.alerts)
        lines.append(SummaryLine("alerts", f"{len(r.alerts)}" + (f" ({active} lasting to the end)" if active else ""),
                                 "thresholds of analytics.alerts"))
    return lines


def alert_line(a: Alert, zone: tzinfo) -> str:
    """``08:10 to 08:25 UTC contamination_share: contamination share 12.5 % above 5 % (...)``."""
    start = format_time(a.t_start_ns, zone, seconds=False)
    end = "still active" if a.t_end_ns is None else format_time(a.t_end_ns, zone, date=False, seconds=False)
    return f"{start} to {end}  {a.rule}: {a.message}"
