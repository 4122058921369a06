"""A report as one self-contained HTML page: the summary in words, the alerts, the charts (inline SVG), the classes.

The page loads nothing from anywhere: styles are inline and the charts are
matplotlib's SVG, embedded with their words kept as text. Without matplotlib
(the ``report`` extra) the page still holds every figure and table, and says
how to get the charts.
"""

from __future__ import annotations

import html
import re

from sorter.analytics.extras import ReportExtraMissingError
from sorter.analytics.report import Report
from sorter.analytics.timebins import format_time
from sorter.analytics.wording import pct, subtitle, summary, title

_STYLE = """
body{font-family:"DejaVu Sans",Verdana,sans-serif;margin:1.5em 2em;color:#222;max-width:1250px}
h1{font-size:1.45em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
p.sub{color:#555;margin:0 0 1em}table{border-collapse:collapse;font-size:.92em}
td,th{padding:3px 12px 3px 0;text-align:left;vertical-align:top}th{border-bottom:1px solid #999}
td.num,th.num{text-align:right}td.how{color:#666}td.label{font-weight:bold;white-space:nowrap}tr.active td{color:#b00}
.chart svg{max-width:100%;height:auto}.note{background:#fff6d6;padding:.5em .8em;border-left:4px solid #e0b000}
"""


def _chart(r: Report) -> tuple[str, str | None]:
    """The chart as inline SVG markup, or ``("", why)`` when matplotlib is not installed."""
    from sorter.analytics.charts import to_svg

    try:
        svg = to_svg(r, header=False)
    except ReportExtraMissingError as e:
        return "", str(e)
    svg = re.sub(r"^.*?(<svg\b)", r"\1", svg, count=1, flags=re.S)  # drop the XML declaration and DOCTYPE
    return f'<div class="chart" role="img" aria-label="{html.escape(title(r))}">{svg}</div>', None


def to_html(r: Report) -> tuple[str, str | None]:
    """The page, and why the charts are missing (None when they are there)."""
    esc = html.escape
    rows = "".join(
        f"<tr><td class=label>{esc(s.label)}</td><td>{esc(s.value)}</td><td class=how>{esc(s.how)}</td></tr>"
        for s in summary(r)
    )
    if r.alerts:
        alert_rows = "".join(
            f'<tr class="{"active" if a.active else ""}"><td>{esc(format_time(a.t_start_ns, r.zone))}</td>'
            f"<td>{esc('lasted to the end of the data' if a.t_end_ns is None else format_time(a.t_end_ns, r.zone))}</td>"
            f"<td>{esc(a.rule)}</td><td class=num>{a.value:.1f} {esc(a.unit)}</td>"
            f"<td class=num>{a.threshold:g} {esc(a.unit)}</td><td>{esc(a.message)}</td></tr>"
            for a in r.alerts
        )
        alerts = ("<table><tr><th>start</th><th>end</th><th>rule</th><th class=num>worst</th><th class=num>threshold</th>"
                  f"<th>what</th></tr>{alert_rows}</table>")
    else:
        alerts = "<p>No alert in this period.</p>"
    t = r.totals
    class_rows = "".join(
        f"<tr><td>{esc(c)}</td><td class=num>{t.objects.get(c, 0)}</td>"
        f"<td class=num>{pct(t.objects.get(c, 0) / t.total if t.total else None)}</td>"
        f"<td class=num>{t.actuated.get(c, 0)}</td><td>{'target' if c in r.targets else ''}</td></tr>"
        for c in r.classes
    )
    chart, missing = _chart(r)
    if missing:
        chart = f'<p class="note">Charts left out: {esc(missing)}.</p>'
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title(r))}</title><style>{_STYLE}</style></head>
<body><h1>{esc(title(r))}</h1><p class="sub">{esc(subtitle(r))}</p>
<h2>Summary</h2><table>{rows}</table>
<h2>Alerts</h2>{alerts}
<h2>Over time</h2>{chart}
<h2>By class</h2><table><tr><th>class</th><th class=num>objects</th><th class=num>share</th>
<th class=num>{esc(r.verb)}</th><th></th></tr>{class_rows}</table>
</body></html>
"""
    return page, missing
