"""The sweep's charts (PNG, matplotlib's object-oriented API on the Agg renderer; the ``report`` extra).

* recovery against purity, one point per setting, the Pareto front joined and labelled;
* sensitivity: for each swept key, recovery and purity against its values (mean, and the range over the other keys);
* per-recording spread: each setting's recovery and purity on every recording, best setting first.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from sorter.analytics.extras import require
from sorter.sweep.grid import RankMetric, format_value
from sorter.sweep.table import SettingResult, pareto_front, ranked, sensitivity

DPI = 110
METRICS = (("recovery", "tab:blue"), ("purity", "tab:orange"))


def _figure(w_in: float, h_in: float) -> Any:
    return require("matplotlib.figure", "drawing the sweep's charts").Figure(figsize=(w_in, h_in), layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def recovery_purity(settings: Sequence[SettingResult]) -> tuple[bytes, list[str]]:
    """Recovery (x) against purity (y) per setting; returns the PNG and the ids of the Pareto front."""
    fig = _figure(7.5, 5.5)
    ax = fig.add_subplot()
    pts = [(s.metrics.get("recovery", float("nan")), s.metrics.get("purity", float("nan"))) for s in settings]
    front = pareto_front(pts)
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=28, color="0.6", label="setting", zorder=2)
    if front:
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "-o", color="tab:red", ms=7,
                label="Pareto front (no setting beats it on both)", zorder=3)
        at: dict[tuple[float, float], list[int]] = {}
        for i in front:  # settings on the same spot share one label
            at.setdefault(pts[i], []).append(i)
        for pt, same in at.items():
            text = "\n".join(f"{settings[i].setting}: {settings[i].label}" for i in same[:4])
            text += f"\n(+{len(same) - 4} more)" if len(same) > 4 else ""
            ax.annotate(text, pt, fontsize=7, xytext=(-6, -6), textcoords="offset points", ha="right", va="top", zorder=4)
        ax.margins(0.08)
    ax.set_xlabel("recovery (targets removed / targets passed, pooled over recordings)")
    ax.set_ylabel("purity (targets among removed objects)")
    ax.set_title("Recovery against purity per setting")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _png(fig), [settings[i].setting for i in front]


def _tick(v: Any) -> str:
    return format_value(v) if not isinstance(v, dict) else json.dumps(v)


def sensitivity_chart(settings: Sequence[SettingResult], keys: Sequence[str]) -> bytes:
    """One panel per swept key: recovery and purity against the key's values (line: mean; band: min..max)."""
    fig = _figure(4.2 * min(len(keys), 3), 3.4 * ((len(keys) + 2) // 3))
    for n, key in enumerate(keys):
        ax = fig.add_subplot((len(keys) + 2) // 3, min(len(keys), 3), n + 1)
        numeric = all(isinstance(s.values[key], int | float) and not isinstance(s.values[key], bool) for s in settings)
        for metric, colour in METRICS:
            rows = sensitivity(settings, key, metric)
            if not rows:
                continue
            xs: list[Any] = [r[0] for r in rows] if numeric else list(range(len(rows)))
            ax.plot(xs, [r[1] for r in rows], "-o", color=colour, label=metric, ms=4)
            ax.fill_between(xs, [r[2] for r in rows], [r[3] for r in rows], color=colour, alpha=0.15)
            if not numeric:
                ax.set_xticks(xs, [_tick(r[0]) for r in rows], rotation=30, fontsize=7)
        ax.set_title(key, fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if n == 0:
            ax.legend(fontsize=7)
    fig.suptitle("Sensitivity of each swept key (line: mean over the other keys; band: their range)", fontsize=10)
    return _png(fig)


def spread_chart(settings: Sequence[SettingResult], rank: Sequence[RankMetric]) -> bytes:
    """Each setting's recovery and purity on each recording (dots) and their range (bar), best setting first."""
    order = ranked(settings, rank) if rank else list(settings)
    fig = _figure(max(6.0, 0.32 * len(order) + 2), 5.0)
    axes = fig.subplots(2, 1, sharex=True)
    for ax, (metric, colour) in zip(axes, METRICS, strict=True):
        for x, s in enumerate(order):
            vals = [float(v[metric]) for v in s.by_recording.values() if isinstance(v.get(metric), int | float)]
            if not vals:
                continue
            ax.vlines(x, min(vals), max(vals), color=colour, alpha=0.5, lw=3)
            ax.scatter([x] * len(vals), vals, color=colour, s=14, zorder=3)
        ax.set_ylabel(metric)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[-1].set_xticks(range(len(order)), [s.setting for s in order], rotation=90, fontsize=7)
    axes[0].set_title("Spread over recordings (one dot per recording; settings best first)", fontsize=10)
    return _png(fig)
