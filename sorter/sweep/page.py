"""Write a sweep's results folder: the tables (CSV, Parquet), the charts (PNG) and ``index.html`` that shows them.

The folder::

    runs.csv / runs.parquet     one row per (recording, setting): swept values, every metric, host, errors
    settings.csv                one row per setting, best first: pooled recovery and purity, means of the rest
    sweep.json                  the sweep file's grid, the recordings, and every replay summary
    recovery_purity.png, sensitivity.png, spread.png
    index.html                  the ranking, the Pareto front and the charts (loads nothing from anywhere)

Without matplotlib (the ``report`` extra) the tables and the page are still written and the page says how to
get the charts.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sorter.analytics.extras import ReportExtraMissingError
from sorter.sweep.grid import format_value
from sorter.sweep.runner import SweepPlan
from sorter.sweep.table import SettingResult, per_setting, ranked, run_rows, write_csv, write_parquet
from sorter.sweep.task import TaskResult

#: per-setting columns of settings.csv and the page, after the swept keys
SETTING_METRICS = ("recovery", "purity", "recovery_visible", "targets_passed", "targets_ejected", "nontargets_ejected",
                   "fire_position_error_mm.p99", "commands_late_dropped", "tracks_confirmed")

_STYLE = """
body{font-family:"DejaVu Sans",Verdana,sans-serif;margin:1.5em 2em;color:#222;max-width:1250px}
h1{font-size:1.45em}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em}td,th{padding:3px 10px 3px 0;text-align:left}th{border-bottom:1px solid #999}
td.num{text-align:right}tr.front td{font-weight:bold}img{max-width:100%}
.note{background:#fff6d6;padding:.5em .8em;border-left:4px solid #e0b000}.err{color:#b00}
"""


def _num(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _settings_csv(path: Path, order: Sequence[SettingResult], keys: Sequence[str], front: set[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "setting", *keys, *SETTING_METRICS, "pareto_front", "recordings_ok", "errors"])
        for n, s in enumerate(order, 1):
            w.writerow([n, s.setting, *(json.dumps(s.values[k]) if isinstance(s.values[k], list | dict) else s.values[k]
                                        for k in keys),
                        *(s.metrics.get(m, "") for m in SETTING_METRICS), s.setting in front, len(s.by_recording),
                        "; ".join(f"{r}: {e}" for r, e in s.errors.items())])


def _charts(out: Path, settings: list[SettingResult], plan: SweepPlan) -> tuple[list[str], list[str], str | None]:
    """Draw the PNGs; returns their file names, the Pareto front, and why there are no charts (None: drawn)."""
    from sorter.sweep import pictures
    from sorter.sweep.table import pareto_front

    pts = [(s.metrics.get("recovery", float("nan")), s.metrics.get("purity", float("nan"))) for s in settings]
    front = [settings[i].setting for i in pareto_front(pts)]
    try:
        png, front = pictures.recovery_purity(settings)
        (out / "recovery_purity.png").write_bytes(png)
        (out / "sensitivity.png").write_bytes(pictures.sensitivity_chart(settings, plan.grid.keys))
        (out / "spread.png").write_bytes(pictures.spread_chart(settings, plan.grid.rank))
    except ReportExtraMissingError as e:
        return [], front, str(e)
    return ["recovery_purity.png", "sensitivity.png", "spread.png"], front, None


def write_results(out: Path, plan: SweepPlan, results: Sequence[TaskResult], meta: dict[str, Any]) -> dict[str, Any]:
    """Write every file of the results folder; returns what was written and the best settings."""
    out.mkdir(parents=True, exist_ok=True)
    grid = plan.grid
    rows = run_rows(grid, results)
    write_csv(rows, out / "runs.csv")
    parquet = write_parquet(rows, out / "runs.parquet")
    settings = per_setting(grid, results)
    order = ranked(settings, grid.rank) if grid.rank else settings
    images, front, why_no_charts = _charts(out, settings, plan)
    _settings_csv(out / "settings.csv", order, grid.keys, set(front))
    doc = {
        "sweep_file": str(grid.source),
        "keys": list(grid.keys),
        "settings": [{"id": s.id, "values": s.values} for s in grid.settings],
        "recordings": {k: str(v) for k, v in plan.recordings.items()},
        "rank": [asdict(m) for m in grid.rank],
        "pareto_front": front,
        **meta,
        "results": [asdict(r) for r in results],
    }
    (out / "sweep.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    (out / "index.html").write_text(_html(plan, order, set(front), images, why_no_charts, parquet, meta), encoding="utf-8")
    return {"parquet": parquet, "charts": images, "pareto_front": front, "best": [s.setting for s in order[:3]],
            "errors": sum(1 for r in results if r.error)}


def _html(plan: SweepPlan, order: Sequence[SettingResult], front: set[str], images: list[str], why: str | None,
          parquet: bool, meta: dict[str, Any]) -> str:
    esc = html.escape
    keys = plan.grid.keys
    head = "".join(f"<th>{esc(k)}</th>" for k in ("#", "setting", *keys, *SETTING_METRICS, "errors"))
    body = []
    for n, s in enumerate(order, 1):
        cells = [str(n), s.setting, *(format_value(s.values[k]) for k in keys)]
        cells += [_num(s.metrics.get(m)) for m in SETTING_METRICS]
        errs = "; ".join(f"{r}: {e}" for r, e in s.errors.items())
        tds = "".join(f"<td class=num>{esc(c)}</td>" for c in cells) + f"<td class=err>{esc(errs)}</td>"
        body.append(f'<tr class="{"front" if s.setting in front else ""}">{tds}</tr>')
    charts = "".join(f'<p><img src="{esc(i)}" alt="{esc(i)}"></p>' for i in images)
    if why:
        charts = f'<p class="note">No charts: {esc(why)}</p>'
    rank = ", ".join(f"{m.metric} ({m.goal})" for m in plan.grid.rank) or "sweep order (no rank in the sweep file)"
    recs = ", ".join(esc(k) for k in plan.recordings)
    tables = "runs.csv" + (", runs.parquet" if parquet else "") + ", settings.csv, sweep.json"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sweep {esc(plan.grid.source.name)}</title><style>{_STYLE}</style></head>
<body><h1>Sweep {esc(plan.grid.source.name)}</h1>
<p>{len(plan.grid.settings)} settings x {len(plan.recordings)} recordings ({recs}), {esc(str(meta.get("mode", "")))};
ranked by {esc(rank)}. Bold rows are on the Pareto front of recovery and purity. Tables: {esc(tables)}.</p>
<h2>Charts</h2>{charts}
<h2>Settings, best first</h2><table><tr>{head}</tr>{"".join(body)}</table>
</body></html>
"""
