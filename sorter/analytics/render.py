"""A report as CSV, as a self-contained HTML page with an SVG chart, or as a PNG chart (OpenCV drawing)."""

from __future__ import annotations

import csv
import html
import io
from datetime import UTC, datetime

import cv2
import numpy as np

from sorter.analytics.report import Report

#: BGR colours per class position (PNG); the SVG uses the same as hex.
_PALETTE = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140), (194, 119, 227)]


def _iso(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _hex(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def to_csv(r: Report) -> str:
    """One row per bucket: start time, objects per class, total, ejected, target decisions, executed."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["bucket_start_utc", *r.classes, "total", "ejected", "target_decisions", "executed"])
    for b in r.buckets:
        w.writerow([_iso(b.t_start_ns), *(b.objects.get(c, 0) for c in r.classes), b.total, sum(b.ejected.values()),
                    b.targets, b.executed])
    return buf.getvalue()


def _svg(r: Report, width: int = 900, height: int = 300) -> str:
    peak = max([b.total for b in r.buckets] + [1])
    bw = width / len(r.buckets)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20}" role="img">']
    for k, b in enumerate(r.buckets):
        y = float(height)
        for ci, c in enumerate(r.classes):
            h = height * b.objects.get(c, 0) / peak
            if h > 0:
                y -= h
                parts.append(f'<rect x="{k * bw:.1f}" y="{y:.1f}" width="{max(1.0, bw - 1):.1f}" height="{h:.1f}" '
                             f'fill="{_hex(_PALETTE[ci % len(_PALETTE)])}"><title>{html.escape(c)}: '
                             f'{b.objects.get(c, 0)}</title></rect>')
    parts.append(f'<text x="0" y="{height + 15}" font-size="12">{_iso(r.t_start_ns)} UTC</text>')
    parts.append(f'<text x="{width}" y="{height + 15}" font-size="12" text-anchor="end">{_iso(r.t_end_ns)} UTC</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(r: Report, title: str) -> str:
    """A self-contained page: totals, a stacked composition chart over time, and the per-class table."""
    rec = "n/a" if r.recovery_estimate is None else f"{100 * r.recovery_estimate:.1f} %"
    conf = "n/a" if r.ejected_mean_confidence is None else f"{r.ejected_mean_confidence:.3f}"
    legend = " ".join(
        f'<span style="color:{_hex(_PALETTE[i % len(_PALETTE)])}">&#9632;</span> {html.escape(c)}'
        for i, c in enumerate(r.classes)
    )
    rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{r.objects.get(c, 0)}</td><td>{r.ejected.get(c, 0)}</td></tr>" for c in r.classes
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}
td:first-child{{text-align:left}}</style>
</head><body><h2>{html.escape(title)}</h2>
<p>{_iso(r.t_start_ns)} to {_iso(r.t_end_ns)} UTC, buckets of {r.bucket_s:g} s</p>
<ul><li>objects: {sum(r.objects.values())} ({r.throughput_per_min:.1f} per minute)</li>
<li>ejected: {sum(r.ejected.values())}, of which executed by the controller: {r.executed}</li>
<li>recovery estimate: {rec} (executed ejections / objects decided as targets)</li>
<li>ejected objects' mean class confidence: {conf} (a proxy for purity: measuring purity needs a bale sample)</li></ul>
<h3>Composition over time</h3><p>{legend}</p>{_svg(r)}
<h3>By class</h3><table><tr><th>class</th><th>objects</th><th>ejected</th></tr>{rows}</table>
</body></html>
"""


def to_png(r: Report, width: int = 1000, height: int = 400) -> bytes:
    """The composition chart (stacked bars per bucket, legend) as PNG bytes."""
    img = np.full((height, width, 3), 255, np.uint8)
    left, bottom, top = 50, height - 40, 40
    peak = max([b.total for b in r.buckets] + [1])
    bw = (width - left - 10) / len(r.buckets)
    cv2.line(img, (left, bottom), (width - 10, bottom), (0, 0, 0), 1)
    cv2.line(img, (left, top), (left, bottom), (0, 0, 0), 1)
    cv2.putText(img, str(peak), (5, top + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for k, b in enumerate(r.buckets):
        y = float(bottom)
        for ci, c in enumerate(r.classes):
            h = (bottom - top) * b.objects.get(c, 0) / peak
            if h > 0:
                x0 = int(left + k * bw)
                cv2.rectangle(img, (x0, int(y - h)), (int(x0 + max(1.0, bw - 1)), int(y)), _PALETTE[ci % len(_PALETTE)], -1)
                y -= h
    for ci, c in enumerate(r.classes):
        x = left + ci * 140
        cv2.rectangle(img, (x, 10), (x + 12, 22), _PALETTE[ci % len(_PALETTE)], -1)
        cv2.putText(img, c, (x + 16, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{_iso(r.t_start_ns)} UTC", (left, height - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("PNG encoding failed")
    return bytes(buf.tobytes())
