"""A report's charts, drawn with matplotlib: composition, throughput and quality over time, alerts shaded.

matplotlib comes with the ``report`` extra (``pip install 'sorter[report]'``)
and is imported only when a chart is drawn; figures are built with the
object-oriented API (``matplotlib.figure.Figure``, the Agg renderer), never
pyplot, so drawing needs no display and leaves no global state behind.

One page holds a title with the line and the period, the summary figures, and
three panels on one time axis (in the report's time zone): objects per class
per bucket (stacked bars), throughput per minute of running time, and the
recovery, purity and contamination estimates in percent. Alert thresholds are
dashed lines, alerts are shaded red. Buckets with nothing ejected have no
purity: the line has a gap there, never a made-up 100 %.
"""

from __future__ import annotations

import io
import math
from datetime import datetime
from typing import Any

from sorter.analytics.extras import require
from sorter.analytics.report import Report
from sorter.analytics.timebins import format_duration_s, to_datetime
from sorter.analytics.wording import alert_line, pct, per_min, subtitle, summary, title

#: One colour per class, the same in every chart.
CLASS_COLOURS = {
    "pet_bottle": "#1f77b4", "hdpe_container": "#ff7f0e", "alu_can": "#7f7f7f",
    "cardboard": "#8c564b", "paper": "#bcbd22", "film": "#9467bd",
}
_SPARE = ("#17becf", "#e377c2", "#2ca02c", "#d62728", "#aec7e8", "#ffbb78")
WIDTH_IN, HEIGHT_IN, DPI = 12.0, 9.6, 100  # 1200 x 960 px
ALERT_COLOUR = "#d62728"


def class_colour(name: str, classes: tuple[str, ...]) -> str:
    if name in CLASS_COLOURS:
        return CLASS_COLOURS[name]
    others = [c for c in classes if c not in CLASS_COLOURS]
    return _SPARE[others.index(name) % len(_SPARE)] if name in others else "#333333"


def _dt(t_ns: int, r: Report) -> datetime:
    return to_datetime(t_ns, r.zone)


def _nan(x: float | None, scale: float = 1.0) -> float:
    return math.nan if x is None else x * scale


def _headline(r: Report) -> str:
    t = r.totals
    return "   |   ".join((
        f"{t.total} objects",
        per_min(r.throughput_per_min) if r.throughput_per_min is not None else "throughput n/a",
        f"{r.verb} {t.n_actuated} (executed {t.executed})",
        f"recovery est. {pct(t.recovery_estimate)}",
        f"contamination {pct(t.contamination_share)}",
        f"purity est. {pct(t.purity_estimate)}",
    ))


def _time_axis(ax: Any, r: Report, mdates: Any) -> None:
    locator = mdates.AutoDateLocator(tz=r.zone, minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(  # clock times in full, never a bare "10" for 10 s
        locator, tz=r.zone, show_offset=True,
        formats=["%Y", "%b", "%d %b", "%H:%M", "%H:%M", "%H:%M:%S"],
        zero_formats=["", "%Y", "%b", "%d %b", "%H:%M", "%H:%M:%S"],
        offset_formats=["", "%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d"],
    ))
    ax.set_xlim(_dt(r.buckets[0].t_start_ns, r), _dt(r.buckets[-1].t_end_ns, r))


def _shade_alerts(ax: Any, r: Report, kinds: tuple[str, ...]) -> bool:
    """Shade the alerts of ``kinds``; True when there was one (its legend entry is ``alert``)."""
    end_ns = r.buckets[-1].t_end_ns
    mine = [a for a in r.alerts if a.kind in kinds]
    for k, a in enumerate(mine):
        a_end = a.t_end_ns if a.t_end_ns is not None else end_ns
        ax.axvspan(_dt(a.t_start_ns, r), _dt(a_end, r), color=ALERT_COLOUR, alpha=0.13, lw=0,
                   label="alert raised" if k == 0 else None)
    return bool(mine)


def _legend(ax: Any, title: str | None = None, first: list[Any] | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    handles = [*(first or []), *handles]
    labels = [*(h.get_label() for h in first or []), *labels]
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=9, frameon=False, title=title,
              title_fontsize=9, alignment="left")


def _class_order(classes: tuple[str, ...]) -> list[str]:
    """Known classes in their fixed order (the same stacking in every report), then the others by name."""
    known = [c for c in CLASS_COLOURS if c in classes]
    return known + sorted(c for c in classes if c not in CLASS_COLOURS)


def _thresholds(r: Report, kind: str) -> list[tuple[str, float]]:
    """``(rule, threshold)`` of the rules of ``kind`` in force, and of those that raised an alert in the period."""
    seen = {rule: threshold for rule, k, threshold in r.thresholds if k == kind}
    for a in r.alerts:
        if a.kind == kind:
            seen.setdefault(a.rule, a.threshold)
    return sorted(seen.items())


def _composition(ax: Any, r: Report, patches: Any, ticker: Any) -> list[Any]:
    """Stacked bars of objects per class; returns the legend's patches (full colour, top of the stack first)."""
    starts = [_dt(b.t_start_ns, r) for b in r.buckets]
    widths = [_dt(b.t_end_ns, r) - _dt(b.t_start_ns, r) for b in r.buckets]
    # a bucket the line ran only part of holds fewer objects for that reason alone: drawn paler, with hatching
    partial = [b.running_s < 0.98 * (b.t_end_ns - b.t_start_ns) / 1e9 for b in r.buckets]
    legend: list[Any] = []
    bottom = [0.0] * len(r.buckets)
    for c in _class_order(r.classes):
        counts = [float(b.objects.get(c, 0)) for b in r.buckets]
        colour = class_colour(c, r.classes)
        bars = ax.bar(starts, counts, width=widths, bottom=bottom, align="edge", color=colour, edgecolor="white",
                      linewidth=0.4)
        for bar, part in zip(bars, partial, strict=True):
            if part:
                bar.set_alpha(0.45)
        legend.insert(0, patches.Patch(color=colour, label=c))
        bottom = [x + y for x, y in zip(bottom, counts, strict=True)]
    if any(partial):
        legend.append(patches.Patch(color="#bbbbbb", alpha=0.45, label="paler: bucket only partly running"))
    ax.set_title(f"Composition: objects per class, per {format_duration_s(r.bucket_s)} bucket", loc="left", fontsize=11)
    ax.set_ylabel(f"objects per {format_duration_s(r.bucket_s)}")
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    return legend


def _centres(r: Report) -> list[datetime]:
    return [_dt((b.t_start_ns + b.t_end_ns) // 2, r) for b in r.buckets]


def _throughput(ax: Any, r: Report) -> None:
    rate = [_nan(r.bucket_throughput_per_min(b)) for b in r.buckets]
    ax.plot(_centres(r), rate, marker="o", ms=3.5, lw=1.6, color="#1f4e79", label="objects per minute")
    lines = _thresholds(r, "throughput")
    for rule, threshold in lines:
        ax.axhline(threshold, ls="--", lw=1.2, color=ALERT_COLOUR, label=f"alert below {threshold:g} ({rule})")
    top = max([x for x in rate if not math.isnan(x)] + [t for _, t in lines] + [1.0])
    ax.set_ylim(0, top * 1.15)
    ax.set_title("Throughput per minute of running time", loc="left", fontsize=11)
    ax.set_ylabel("objects per minute")


def _quality(ax: Any, r: Report) -> None:
    x = _centres(r)
    series: list[tuple[str, str, list[float]]] = [
        ("recovery estimate", "#2ca02c", [_nan(b.recovery_estimate, 100) for b in r.buckets]),
        ("purity estimate", "#1f77b4", [_nan(b.purity_estimate, 100) for b in r.buckets]),
        ("contamination share", "#ff7f0e", [_nan(b.contamination_share, 100) for b in r.buckets]),
    ]
    for label, colour, ys in series:
        ax.plot(x, ys, marker="o", ms=3.5, lw=1.6, color=colour, label=label)
    for rule, threshold in _thresholds(r, "contamination_share"):
        ax.axhline(threshold, ls="--", lw=1.2, color=ALERT_COLOUR, label=f"alert above {threshold:g} % ({rule})")
    ax.set_ylim(-2, 104)
    ax.set_title(f"Quality estimates (buckets with nothing {r.verb} have none)", loc="left", fontsize=11)
    ax.set_ylabel("percent")


def _header(fig: Any, r: Report) -> None:
    fig.text(0.008, 0.93, title(r), fontsize=14, fontweight="bold", va="top")
    fig.text(0.008, 0.58, subtitle(r), fontsize=10, va="top", color="#333333")
    fig.text(0.008, 0.28, _headline(r), fontsize=10.5, va="top")


def figure(r: Report, *, header: bool = True) -> Any:
    """The report's chart page as a ``matplotlib.figure.Figure``; without ``header`` (a page that has its own title),
    only the three panels."""
    mfigure = require("matplotlib.figure", "drawing the report")
    mdates = require("matplotlib.dates", "drawing the report")
    height_in = HEIGHT_IN if header else HEIGHT_IN * 0.9
    fig = mfigure.Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    if header:
        head, body = fig.subfigures(2, 1, height_ratios=(0.095, 0.905))
        _header(head, r)
    else:
        body = fig
    if not r.buckets:
        ax = body.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No objects in this period", ha="center", va="center", fontsize=16, color="#555555",
                transform=ax.transAxes)
        return fig
    axes = body.subplots(3, 1, sharex=True, height_ratios=(1.25, 1.0, 1.0))
    class_patches = _composition(axes[0], r, require("matplotlib.patches", "drawing the report"),
                                 require("matplotlib.ticker", "drawing the report"))
    _throughput(axes[1], r)
    _quality(axes[2], r)
    panels = ((axes[0], ("class_share",), "class", class_patches), (axes[1], ("throughput",), None, None),
              (axes[2], ("contamination_share",), None, None))
    for ax, kinds, legend_title, first in panels:
        _shade_alerts(ax, r, kinds)
        ax.grid(True, axis="y", color="#dddddd", lw=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        _time_axis(ax, r, mdates)
        _legend(ax, legend_title, first)
    axes[-1].set_xlabel(f"time ({r.zone_label})")
    return fig


def _text_page(r: Report) -> Any:
    """A second page for PDF: the summary with how each figure is obtained, the alerts, and the classes."""
    mfigure = require("matplotlib.figure", "drawing the report")
    fig = mfigure.Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    lines: list[tuple[str, float, str]] = [(title(r), 13.0, "bold"), (subtitle(r), 10.0, "normal"), ("", 10.0, "normal")]
    for s in summary(r):
        lines.append((f"{s.label}: {s.value}", 10.5, "bold"))
        if s.how:
            lines.append((f"      {s.how}", 9.0, "normal"))
    lines += [("", 10.0, "normal"), ("Alerts", 11.5, "bold")]
    lines += [(alert_line(a, r.zone), 9.5, "normal") for a in r.alerts] or [("none in this period", 9.5, "normal")]
    lines += [("", 10.0, "normal"), (f"By class (objects / {r.verb})", 11.5, "bold")]
    lines += [(f"{c}: {r.totals.objects.get(c, 0)} / {r.totals.actuated.get(c, 0)}", 9.5, "normal") for c in r.classes]
    y = 0.96
    for text, size, weight in lines:
        fig.text(0.05, y, text, fontsize=size, fontweight=weight, va="top")
        y -= size / 72 * 1.55 / HEIGHT_IN
    return fig


def to_png(r: Report) -> bytes:
    """The chart page as PNG bytes (1200 x 960 px)."""
    buf = io.BytesIO()
    figure(r).savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def to_svg(r: Report, *, header: bool = True) -> str:
    """The chart page as SVG text, its words kept as text (searchable, and drawn in the page's font)."""
    matplotlib = require("matplotlib", "drawing the report")
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "sorter"}):
        figure(r, header=header).savefig(buf, format="svg")
    return buf.getvalue()


def to_pdf(r: Report) -> bytes:
    """Two pages: the charts, then the figures in words with the alerts."""
    backend_pdf = require("matplotlib.backends.backend_pdf", "writing a PDF report")
    buf = io.BytesIO()
    with backend_pdf.PdfPages(buf, metadata={"Title": title(r), "Creator": "sorter report"}) as pdf:
        pdf.savefig(figure(r))
        pdf.savefig(_text_page(r))
    return buf.getvalue()

