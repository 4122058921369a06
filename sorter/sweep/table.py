"""Sweep results as tables: one row per (recording, setting), one per setting, the Pareto front and the ranking. Pure.

Per setting, recovery and purity are pooled over the recordings (targets removed over targets passed, targets
among removed objects), so a short recording weighs less than a long one; every other metric is the mean over
the recordings that replayed without error.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.sweep.grid import RankMetric, SweepGrid
from sorter.sweep.task import WALL_CLOCK_FIELDS, TaskResult

#: the first columns of the per-run table, before the swept keys and the metrics
ID_COLUMNS = ("recording", "setting", "label")
#: columns after the metrics: where and how the run went
TAIL_COLUMNS = ("ground_truth", "error", "host", "task_wall_s")


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar summary values with dotted names (``fire_position_error_mm.p99``); wall-clock fields left out."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if not prefix and k in WALL_CLOCK_FIELDS:
            continue
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif isinstance(v, bool | int | float | str) or v is None:
            out[name] = v
        else:
            out[name] = json.dumps(v)
    return out


def _cell(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list | dict) else v


def run_rows(grid: SweepGrid, results: Sequence[TaskResult]) -> list[dict[str, Any]]:
    """One row per task: ids, the swept values, every scalar metric, then ground truth, error, host, task time."""
    settings = {s.id: s for s in grid.settings}
    rows = []
    for r in results:
        s = settings[r.setting]
        row: dict[str, Any] = {"recording": r.recording, "setting": r.setting, "label": s.label()}
        row.update({k: _cell(v) for k, v in s.values.items()})
        row.update(flatten(r.summary) if r.summary is not None else {})
        row.update({"ground_truth": r.ground_truth, "error": r.error or "", "host": r.host, "task_wall_s": r.task_wall_s})
        rows.append(row)
    return rows


def columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every column in first-seen order, the run's own columns last."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(k for k in row if k not in TAIL_COLUMNS))
    return [*seen, *TAIL_COLUMNS]


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    cols = columns(rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, cols, restval="")
        w.writeheader()
        w.writerows(rows)


def write_parquet(rows: Sequence[dict[str, Any]], path: Path) -> bool:
    """Write Parquet when pyarrow is installed (the ``report`` extra); False when it is not."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    cols = columns(rows)
    data = {}
    for c in cols:
        values = [row.get(c) for row in rows]
        kinds = {type(v) for v in values if v is not None}
        if kinds - {int, float, bool} or (bool in kinds and kinds != {bool}):
            values = [None if v is None else str(v) for v in values]  # mixed columns as text, never a failed write
        elif float in kinds:
            values = [None if v is None else float(v) for v in values]
        data[c] = values
    pq.write_table(pa.table(data), path)
    return True


@dataclass(frozen=True)
class SettingResult:
    """One setting over all recordings."""

    setting: str
    label: str
    values: dict[str, Any]
    metrics: dict[str, float]
    by_recording: dict[str, dict[str, Any]]
    errors: dict[str, str]


def _pooled(parts: Sequence[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    passed = sum(p.get("targets_passed") or 0 for p in parts)
    ejected = sum(p.get("targets_ejected") or 0 for p in parts)
    wrong = sum(p.get("nontargets_ejected") or 0 for p in parts)
    if all("targets_passed" in p for p in parts) and parts:
        out["recovery"] = ejected / passed if passed else 0.0
        out["purity"] = ejected / (ejected + wrong) if ejected + wrong else 1.0
    return out


def per_setting(grid: SweepGrid, results: Sequence[TaskResult]) -> list[SettingResult]:
    """Aggregate each setting over the recordings (pooled recovery and purity, means of the rest)."""
    out = []
    for s in grid.settings:
        mine = [r for r in results if r.setting == s.id]
        ok = {r.recording: flatten(r.summary) for r in mine if r.summary is not None}
        errors = {r.recording: r.error or "" for r in mine if r.summary is None}
        metrics: dict[str, float] = {}
        numeric = sorted({k for f in ok.values() for k, v in f.items() if isinstance(v, int | float) and not isinstance(v, bool)})
        for k in numeric:
            vals = [float(f[k]) for f in ok.values() if isinstance(f.get(k), int | float)]
            metrics[k] = sum(vals) / len(vals)
        metrics.update(_pooled(list(ok.values())))
        out.append(SettingResult(s.id, s.label(), dict(s.values), metrics, ok, errors))
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (both maximised), sorted by the first axis."""
    front = []
    for i, (x, y) in enumerate(points):
        if math.isnan(x) or math.isnan(y):
            continue
        dominated = any(
            (ox >= x and oy >= y and (ox > x or oy > y)) for j, (ox, oy) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def ranked(settings: Sequence[SettingResult], rank: Sequence[RankMetric]) -> list[SettingResult]:
    """Settings best first by the rank metrics in order (ties keep sweep order; errors and missing values last)."""

    def key(s: SettingResult) -> tuple[Any, ...]:
        parts: list[Any] = [bool(s.errors)]
        for m in rank:
            v = s.metrics.get(m.metric)
            parts.append((1, 0.0) if v is None else (0, -v if m.goal == "max" else v))
        return tuple(parts)

    return sorted(settings, key=key)


def sensitivity(settings: Sequence[SettingResult], key: str, metric: str) -> list[tuple[Any, float, float, float]]:
    """For each value of ``key``: ``(value, mean, min, max)`` of ``metric`` over the settings with that value."""
    groups: dict[str, tuple[Any, list[float]]] = {}
    for s in settings:
        v = s.metrics.get(metric)
        if v is None:
            continue
        tag = json.dumps(s.values[key], sort_keys=True)
        groups.setdefault(tag, (s.values[key], []))[1].append(v)
    return [(value, sum(vs) / len(vs), min(vs), max(vs)) for value, vs in groups.values()]
