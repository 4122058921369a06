"""Reports from events: buckets, estimates, and the three output formats (real SQLite, real PNG decoding)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from sorter.analytics.events import TrackEvent
from sorter.analytics.render import to_csv, to_html, to_png
from sorter.analytics.report import build_report
from sorter.analytics.sqlite_store import SqliteEventStore
from sorter.cli import main as cli_main
from sorter.commands.report import parse_duration_s, parse_time

T0 = 1_800_000_000_000_000_000  # epoch ns


def _ev(k: int, t_s: float, cls: str, decision: str, outcome: str | None = None, conf: float = 0.8) -> TrackEvent:
    return TrackEvent(T0 + round(t_s * 1e9), k, k + 1, k, cls, conf, 100.0, 50.0, 300.0, -20.0, 5, decision,
                      (k,) if decision == "eject" else (), outcome)


EVENTS = [
    _ev(1, 5, "pet_bottle", "eject", "executed", 0.9),
    _ev(2, 15, "pet_bottle", "eject", "late", 0.7),
    _ev(3, 25, "paper", "not_target"),
    _ev(4, 65, "pet_bottle", "skip"),
    _ev(5, 70, "film", "not_target"),
    _ev(6, 130, "paper", "not_target"),  # outside the period
]


def test_buckets_totals_and_estimates() -> None:
    r = build_report(EVENTS, T0, T0 + 120_000_000_000, 60.0)
    assert [b.total for b in r.buckets] == [3, 2]
    assert r.objects == {"film": 1, "paper": 1, "pet_bottle": 3}
    assert r.ejected == {"pet_bottle": 2}
    assert r.targets == 3 and r.executed == 1
    assert r.recovery_estimate == pytest.approx(1 / 3)
    assert r.ejected_mean_confidence == pytest.approx(0.8)
    assert r.throughput_per_min == pytest.approx(2.5)
    with pytest.raises(ValueError, match="empty"):
        build_report(EVENTS, T0, T0, 60.0)


def test_formats() -> None:
    r = build_report(EVENTS, T0, T0 + 120_000_000_000, 60.0)
    rows = list(csv.DictReader(io.StringIO(to_csv(r))))
    assert [int(x["total"]) for x in rows] == [3, 2] and [int(x["pet_bottle"]) for x in rows] == [2, 1]
    page = to_html(r, "t <1>")
    assert "<svg" in page and "t &lt;1&gt;" in page and "33.3 %" in page
    img = cv2.imdecode(np.frombuffer(to_png(r), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (400, 1000, 3) and (img != 255).any()


def test_time_arguments() -> None:
    now = T0
    assert parse_time("now", now) == now
    assert parse_time("2h", now) == now - 7_200_000_000_000
    assert parse_time("2027-01-15T08:00:00", now) == T0  # no zone: UTC
    assert parse_time("1970-01-01T00:01:00+00:00", now) == 60_000_000_000
    assert parse_duration_s("15m") == 900.0
    with pytest.raises(ValueError, match="30m, 2h"):
        parse_time("yesterday", now)


def test_report_command_reads_a_real_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "events.db"
    with SqliteEventStore(db) as store:
        store.add_batch(EVENTS)
    since, until = "2027-01-15T08:00:00+00:00", "2027-01-15T08:02:00+00:00"  # T0 is 2027-01-15T08:00:00Z
    assert cli_main(["report", "--store", str(db), "--since", since, "--until", until, "--bucket", "1m", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert sum(int(x["total"]) for x in csv.DictReader(io.StringIO(out))) == 5
    png = tmp_path / "r.png"
    assert cli_main(["report", "--store", str(db), "--since", since, "--until", until, "--format", "png", "--out", str(png)]) == 0
    assert cv2.imread(str(png)) is not None
    assert cli_main(["report", "--store", str(tmp_path / "none.db"), "--format", "csv"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["report", "--store", str(db), "--format", "html"]) == 2
    assert "needs --out" in capsys.readouterr().err
