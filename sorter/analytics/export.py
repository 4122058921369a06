"""A report's tables for the plant's BI tools: per bucket, per event, per alert, as CSV or Parquet.

Column names are the same for every line (an air-jet line's ejections and a
robot's picks are both ``actuated``; the ``actuation`` column says which), shares
are fractions from 0 to 1, a bucket's throughput is per minute of its running
time (empty for a bucket at the start or end of a run that ran less than half
of it), and a value that does not exist (purity with nothing
ejected) is empty in CSV and null in Parquet, never 0 or 1. Times are written
twice: as ISO 8601 with the UTC offset of the report's time zone (CSV) or a
timezone-aware timestamp (Parquet), and as epoch nanoseconds.

Parquet needs ``pyarrow`` (the ``report`` extra), imported only when asked for.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sorter.analytics.alerts import Alert
from sorter.analytics.events import TrackEvent
from sorter.analytics.extras import require
from sorter.analytics.report import Report
from sorter.analytics.timebins import format_iso

Kind = Literal["time", "int", "float", "str"]
Value = int | float | str | None
TABLES = ("buckets", "events", "alerts")


@dataclass(frozen=True)
class Table:
    """Named, typed columns and their rows; ``time`` columns hold epoch ns."""

    name: str
    columns: tuple[tuple[str, Kind], ...]
    rows: list[tuple[Value, ...]]


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def bucket_table(r: Report) -> Table:
    """One row per clock-aligned bucket: objects per class, actuations, throughput and the estimates."""
    class_cols: tuple[tuple[str, Kind], ...] = tuple((f"objects_{c}", "int") for c in r.classes)
    columns: tuple[tuple[str, Kind], ...] = (
        ("line", "str"), ("bucket_start", "time"), ("bucket_end", "time"), ("running_s", "float"), ("objects", "int"),
        *class_cols, ("actuation", "str"), ("actuated", "int"), ("actuated_nontarget", "int"),
        ("target_decisions", "int"), ("executed", "int"), ("throughput_per_min", "float"), ("recovery_estimate", "float"),
        ("purity_estimate", "float"), ("contamination_share", "float"),
    )
    rows: list[tuple[Value, ...]] = [
        (r.line, b.t_start_ns, b.t_end_ns, round(b.running_s, 3), b.total, *(b.objects.get(c, 0) for c in r.classes),
         r.verb, b.n_actuated, b.actuated_nontarget, b.target_decisions, b.executed, _round(r.bucket_throughput_per_min(b), 3),
         _round(b.recovery_estimate, 5), _round(b.purity_estimate, 5), _round(b.contamination_share, 5))
        for b in r.buckets
    ]
    return Table("buckets", columns, rows)


def event_table(line: str, events: Sequence[TrackEvent]) -> Table:
    """One row per stored event (finished track), every field."""
    columns: tuple[tuple[str, Kind], ...] = (
        ("line", "str"), ("t_wall", "time"), ("t_wall_ns", "int"), ("t_first_seen_ns", "int"), ("t_last_seen_ns", "int"),
        ("track_id", "int"), ("class_name", "str"), ("confidence", "float"), ("length_mm", "float"), ("width_mm", "float"),
        ("x_mm", "float"), ("u_mm", "float"), ("n_detections", "int"), ("decision", "str"), ("command_ids", "str"),
        ("outcome", "str"),
    )
    rows: list[tuple[Value, ...]] = [(line, e.t_wall_ns, *e.to_row()) for e in events]
    return Table("events", columns, rows)


def alert_table(line: str, alerts: Sequence[Alert]) -> Table:
    """One row per alert; ``end`` is empty for an alert that lasted to the end of the data."""
    columns: tuple[tuple[str, Kind], ...] = (
        ("line", "str"), ("rule", "str"), ("kind", "str"), ("start", "time"), ("end", "time"), ("value", "float"),
        ("threshold", "float"), ("unit", "str"), ("window_s", "float"), ("message", "str"),
    )
    rows: list[tuple[Value, ...]] = [
        (line, a.rule, a.kind, a.t_start_ns, a.t_end_ns, a.value, a.threshold, a.unit, a.window_s, a.message) for a in alerts
    ]
    return Table("alerts", columns, rows)


def to_csv(t: Table, r: Report) -> str:
    """CSV text with a header row; times as ISO 8601 in the report's zone, missing values empty."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([name for name, _ in t.columns])
    kinds = [k for _, k in t.columns]
    for row in t.rows:
        w.writerow(["" if v is None else format_iso(int(v), r.zone) if k == "time" else v
                    for v, k in zip(row, kinds, strict=True)])
    return buf.getvalue()


def arrow_zone(r: Report) -> str:
    """The report's zone as Arrow stores it: the IANA name, else UTC (instants are the same either way)."""
    key = getattr(r.zone, "key", None)
    return str(key) if key and key != "localtime" else "UTC"


def write_parquet(t: Table, r: Report, path: Path) -> None:
    """Write ``t`` as a Parquet file (``pyarrow``): typed columns, timezone-aware timestamps, nulls for missing values."""
    pa = require("pyarrow", "--format parquet")
    pq = require("pyarrow.parquet", "--format parquet")
    types = {"time": pa.timestamp("ns", tz=arrow_zone(r)), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    arrays = [pa.array([row[i] for row in t.rows], type=types[kind]) for i, (_, kind) in enumerate(t.columns)]
    schema = pa.schema([pa.field(name, types[kind]) for name, kind in t.columns],
                       metadata={"sorter.table": t.name, "sorter.line": r.line, "sorter.zone": r.zone_label})
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), str(path))
