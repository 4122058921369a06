"""Charts drawn by real matplotlib: the PNG decodes at its size, and the title, period, axes and units are there as text."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the chart tests need the report extra: pip install -e '.[report]'")

from matplotlib.lines import Line2D
from matplotlib.text import Text

from sorter.analytics import charts, render
from sorter.analytics.alert_eval import evaluate_history
from sorter.analytics.alerts import AlertsConfig
from sorter.analytics.events import TrackEvent
from sorter.analytics.extras import ReportExtraMissingError
from sorter.analytics.report import Report, build_report
from sorter.analytics.timebins import resolve_zone

S = 1_000_000_000
T0 = 1_800_000_000 * S  # 2027-01-15T08:00:00Z = 09:00 CET
CLASSES = ("pet_bottle", "hdpe_container", "alu_can", "cardboard", "paper", "film")


def shift_events() -> list[TrackEvent]:
    """Two hours of a line: 20 objects a minute; 09:40-09:50 CET nothing is ejected; 10:20-10:40 CET film is ejected."""
    out = []
    for k in range(2 * 60 * 20):
        t_s = k * 3.0
        cls = CLASSES[k % 6]
        quiet = 2400 <= t_s < 3000
        contaminated = 4800 <= t_s < 6000 and cls == "film"
        decision = "eject" if (cls == "pet_bottle" or contaminated) and not quiet else "not_target"
        out.append(TrackEvent(T0 + round(t_s * S), k, k, k, cls, 0.85, 100.0, 50.0, 0.0, 0.0, 5, decision,
                              (k,) if decision == "eject" else (), "executed" if decision == "eject" else None))
    return out


def shift_report() -> Report:
    zone, label = resolve_zone("Europe/Berlin")
    events = shift_events()
    r = build_report(events, t_start_ns=T0, t_end_ns=T0 + 3 * 3600 * S, bucket_s=600, zone=zone, zone_label=label,
                     targets=("pet_bottle",), line="west-2")
    cfg = AlertsConfig.model_validate({"rules": [{"kind": "contamination_share", "above_pct": 20, "window_min": 10},
                                                 {"kind": "throughput", "below_per_min": 5, "window_min": 5}]})
    assert r.running_start_ns is not None and r.running_end_ns is not None
    alerts = evaluate_history(cfg, events, targets=("pet_bottle",), t_begin_ns=r.running_start_ns, t_end_ns=r.running_end_ns)
    return r.with_alerts(alerts, [("contamination_share", "contamination_share", 20.0), ("throughput", "throughput", 5.0)])


def texts(fig: object) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]  # type: ignore[attr-defined]


def test_png_decodes_at_its_size_and_is_drawn() -> None:
    img = cv2.imdecode(np.frombuffer(charts.to_png(shift_report()), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (960, 1200, 3)
    assert (img < 128).mean() > 0.005 and (img > 245).mean() > 0.5  # ink on a white page, not a blank or a black one
    # the contamination alert is shaded: pale red pixels exist
    b, g, r = (img[..., i].astype(int) for i in range(3))
    assert ((r > 240) & (g < 235) & (b < 235) & (r - g > 10)).sum() > 1000


def test_title_period_axes_and_units_are_written() -> None:
    r = shift_report()
    fig = charts.figure(r)
    fig.draw_without_rendering()  # lays out the ticks, so that their labels exist
    words = texts(fig)
    joined = "\n".join(words)
    assert "Line west-2: what went by, 2027-01-15 09:00 to 12:00 CET" in words
    assert any(w.startswith("10 min buckets aligned to the clock, times in Europe/Berlin") for w in words)
    assert "objects per 10 min" in words and "objects per minute" in words and "percent" in words
    assert "time (Europe/Berlin)" in words
    for title in ("Composition: objects per class, per 10 min bucket", "Throughput per minute of running time",
                  "Quality estimates (buckets with nothing ejected have none)"):
        assert title in words
    assert all(c in words for c in CLASSES) and "alert raised" in words
    assert "alert above 20 % (contamination_share)" in words
    assert "alert below 5 (throughput)" in words  # a rule in force is drawn even when it raised nothing
    assert re.search(r"2400 objects\s+\|\s+20\.0 per minute\s+\|\s+ejected", joined)
    assert any(re.fullmatch(r"\d\d:\d\d", w) for w in words)  # tick labels are clock times


def test_buckets_with_nothing_ejected_have_a_gap_not_100_percent() -> None:
    r = shift_report()
    fig = charts.figure(r)
    purity = next(ln for ln in fig.findobj(Line2D) if ln.get_label() == "purity estimate")
    ys = np.asarray(purity.get_ydata(), dtype=float)
    quiet = [i for i, b in enumerate(r.buckets) if b.n_actuated == 0]
    assert quiet and np.isnan(ys[quiet]).all() and not np.isnan(np.delete(ys, quiet)).any()


def test_svg_keeps_words_as_text_and_the_pdf_has_two_pages() -> None:
    r = shift_report()
    svg = charts.to_svg(r)
    assert svg.lstrip().startswith("<?xml") and "<text" in svg
    assert "objects per minute" in svg and "Line west-2: what went by" in svg
    assert "Line west-2" not in charts.to_svg(r, header=False)
    pdf = charts.to_pdf(r)
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 2


def test_an_empty_period_says_so() -> None:
    r = build_report([], t_start_ns=T0, t_end_ns=T0 + 3600 * S, line="east")
    fig = charts.figure(r)
    assert "No objects in this period" in texts(fig)
    assert cv2.imdecode(np.frombuffer(charts.to_png(r), np.uint8), cv2.IMREAD_COLOR).shape == (960, 1200, 3)


def test_html_page_is_self_contained_and_readable() -> None:
    page, missing = render.to_html(shift_report())
    assert missing is None and page.startswith("<!doctype html>")
    assert "<svg" in page and "<?xml" not in page and "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched from anywhere
    assert "Line west-2: what went by" in page and "objects per minute" in page
    assert "contamination share" in page and "still active" not in page
    assert "<td>contamination_share</td>" in page


def test_html_without_ejections_says_n_a(tmp_path: Path) -> None:
    events = [e for e in shift_events() if e.decision != "eject"]
    r = build_report(events, t_start_ns=T0, t_end_ns=T0 + 3 * 3600 * S, targets=("pet_bottle",))
    page, _ = render.to_html(r)
    assert "n/a (nothing ejected)" in page and "100.0 %" not in page.split("By class")[0]


def test_missing_matplotlib_is_named_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ReportExtraMissingError, match=r"needs the Python package 'matplotlib'.*pip install 'sorter\[report\]'"):
        charts.to_png(shift_report())
    page, missing = render.to_html(shift_report())
    assert missing is not None and "Charts left out" in page and "<svg" not in page and "sorter[report]" in page


def test_importing_the_report_code_loads_no_chart_library() -> None:
    code = ("import sys, sorter.cli, sorter.commands.report, sorter.analytics.report, sorter.analytics.render, "
            "sorter.analytics.export, sorter.analytics.charts, sorter.analytics.alert_monitor; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'pyarrow'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
