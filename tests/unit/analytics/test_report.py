"""``sorter report`` on a real SQLite store: every format, clock-aligned buckets, rates over the run, alerts, clear errors."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import cv2
import pytest

from sorter.analytics.alerts import Alert
from sorter.analytics.events import TrackEvent
from sorter.analytics.report import build_report
from sorter.analytics.sqlite_store import SqliteEventStore
from sorter.cli import main as cli_main
from sorter.commands.report import parse_duration_s, parse_time

T0 = 1_800_000_000_000_000_000  # epoch ns: 2027-01-15T08:00:00Z
S = 1_000_000_000
ROBOT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "sim-robot.yaml"
SINCE, UNTIL = "2027-01-15T08:00:00+00:00", "2027-01-15T08:02:00+00:00"


def _ev(k: int, t_s: float, cls: str, decision: str, outcome: str | None = None, conf: float = 0.8) -> TrackEvent:
    return TrackEvent(T0 + round(t_s * 1e9), k, k + 1, k, cls, conf, 100.0, 50.0, 300.0, -20.0, 5, decision,
                      (k,) if decision in ("eject", "pick") else (), outcome)


EVENTS = [
    _ev(1, 5, "pet_bottle", "eject", "executed", 0.9),
    _ev(2, 15, "pet_bottle", "eject", "late", 0.7),
    _ev(3, 25, "paper", "not_target"),
    _ev(4, 65, "pet_bottle", "skip"),
    _ev(5, 70, "film", "not_target"),
    _ev(6, 130, "paper", "not_target"),  # outside the period
]


def test_buckets_totals_and_estimates() -> None:
    r = build_report(EVENTS, t_start_ns=T0, t_end_ns=T0 + 120 * S, bucket_s=60.0, targets=("pet_bottle",))
    assert [b.total for b in r.buckets] == [3, 2]
    assert r.totals.objects == {"film": 1, "paper": 1, "pet_bottle": 3}
    assert dict(r.totals.actuated) == {"pet_bottle": 2}
    assert r.totals.target_decisions == 3 and r.totals.executed == 1
    assert r.totals.recovery_estimate == pytest.approx(1 / 3)
    assert r.totals.purity_estimate == pytest.approx(0.8)  # (0.9 + 0.7) / 2 ejected, both of a target class
    # 5 objects from 5 s to 70 s: mean gap 16.25 s, running 0 (clipped) to 78.125 s
    assert r.throughput_per_min == pytest.approx(5 / 78.125 * 60)
    with pytest.raises(ValueError, match="empty"):
        build_report(EVENTS, t_start_ns=T0, t_end_ns=T0)


def test_time_arguments() -> None:
    now = T0
    assert parse_time("now", now) == now
    assert parse_time("2h", now) == now - 7_200_000_000_000
    assert parse_time("2027-01-15T08:00:00", now) == T0  # no zone: UTC
    assert parse_time("1970-01-01T00:01:00+00:00", now) == 60_000_000_000
    assert parse_duration_s("15m") == 900.0
    with pytest.raises(ValueError, match="30m, 2h"):
        parse_time("yesterday", now)


def _store(tmp_path: Path, events: list[TrackEvent] = EVENTS) -> Path:
    db = tmp_path / "events.db"
    with SqliteEventStore(db) as store:
        store.add_batch(events)
    return db


def test_report_command_reads_a_real_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _store(tmp_path)
    args = ["report", "--store", str(db), "--since", SINCE, "--until", UNTIL]
    assert cli_main([*args, "--bucket", "1m", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [x["bucket_start"] for x in rows] == ["2027-01-15T08:00:00+00:00", "2027-01-15T08:01:00+00:00"]
    assert sum(int(x["objects"]) for x in rows) == 5
    assert cli_main([*args, "--bucket", "1m", "--format", "csv", "--tz", "America/Chicago"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["bucket_start"] == "2027-01-15T02:00:00-06:00"
    assert cli_main([*args, "--format", "csv", "--table", "events"]) == 0
    assert [int(x["track_id"]) for x in csv.DictReader(io.StringIO(capsys.readouterr().out))] == [1, 2, 3, 4, 5]
    assert cli_main(["report", "--store", str(tmp_path / "none.db"), "--format", "csv"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["report", "--store", str(db), "--format", "html"]) == 2
    assert "needs --out" in capsys.readouterr().err
    assert cli_main([*args, "--bucket", "7m", "--format", "csv"]) == 2
    assert "cannot report: a bucket of 7 min does not start at the same clock time" in capsys.readouterr().err
    assert cli_main([*args, "--tz", "Mars/Olympus", "--format", "csv"]) == 2
    assert "unknown time zone 'Mars/Olympus'" in capsys.readouterr().err


def test_charts_pdf_html_and_parquet_from_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="charts need the report extra: pip install -e '.[report]'")
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs the report extra: pip install -e '.[report]'")
    db = _store(tmp_path)
    args = ["report", "--store", str(db), "--since", SINCE, "--until", UNTIL, "--tz", "Europe/Berlin"]
    png = tmp_path / "r.png"
    assert cli_main([*args, "--format", "png", "--out", str(png)]) == 0
    img = cv2.imread(str(png))
    assert img is not None and img.shape == (960, 1200, 3)
    assert "5 objects, 2 ejected, 0 alert(s)" in capsys.readouterr().err
    pdf = tmp_path / "r.pdf"
    assert cli_main([*args, "--format", "pdf", "--out", str(pdf)]) == 0 and pdf.read_bytes().startswith(b"%PDF")
    page = tmp_path / "r.html"
    assert cli_main([*args, "--format", "html", "--out", str(page)]) == 0
    text = page.read_text()
    assert "<svg" in text and "2027-01-15 09:00 to 09:02 CET" in text and "times in Europe/Berlin" in text
    parquet = tmp_path / "b.parquet"
    assert cli_main([*args, "--bucket", "1m", "--format", "parquet", "--out", str(parquet)]) == 0
    assert pq.read_table(parquet).column("objects").to_pylist() == [3, 2]


def test_a_one_minute_run_reads_per_minute_of_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = [_ev(k, 600 + k, "pet_bottle" if k % 4 == 0 else "paper", "eject" if k % 4 == 0 else "not_target",
               "executed") for k in range(61)]  # 61 objects, one a second, 08:10:00 to 08:11:00
    db = _store(tmp_path, run)
    day = ["--since", "2027-01-15T00:00:00+00:00", "--until", "2027-01-16T00:00:00+00:00"]
    assert cli_main(["report", "--store", str(db), *day, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    # buckets over the run only (10 s by default: about 10 objects each), at 60 per minute, not 0.04 over the day;
    # the last bucket ran 0.5 s (half a gap after the last object): no rate rather than a spike
    assert [r["bucket_start"][11:19] for r in rows] == ["08:10:00", "08:10:10", "08:10:20", "08:10:30", "08:10:40",
                                                        "08:10:50", "08:11:00"]
    assert [r["throughput_per_min"] for r in rows] == ["60.0"] * 6 + [""]
    assert sum(int(r["objects"]) for r in rows) == 61
    page = tmp_path / "r.html"
    assert cli_main(["report", "--store", str(db), *day, "--format", "html", "--out", str(page)]) == 0
    assert "60.0 per minute" in page.read_text()


def test_robot_picks_and_nothing_ejected_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    picks = [_ev(k, 5 * k, "pet_bottle", "pick", "executed") for k in range(1, 10)]
    db = _store(tmp_path, picks)
    page = tmp_path / "p.html"
    args = ["report", "--store", str(db), "--since", SINCE, "--until", UNTIL, "--config", str(ROBOT_CONFIG)]
    assert cli_main([*args, "--format", "html", "--out", str(page)]) == 0
    assert "9 objects, 9 picked" in capsys.readouterr().err
    text = page.read_text()
    assert "picked" in text and "ejected" not in text
    (tmp_path / "quiet").mkdir()
    quiet = _store(tmp_path / "quiet", [_ev(1, 5, "paper", "not_target")])
    assert cli_main(["report", "--store", str(quiet), "--since", SINCE, "--until", UNTIL, "--format", "html",
                     "--out", str(page)]) == 0
    assert "purity estimate</td><td>n/a (nothing ejected)" in page.read_text()


def test_stored_alerts_are_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _store(tmp_path)
    with SqliteEventStore(db) as store:
        store.put_alerts([Alert("contamination_share", "contamination_share", T0 + 60 * S, T0 + 90 * S, 40.0, 10.0, "%",
                                300.0, "contamination share 40.0 % above 10 %")])
    args = ["report", "--store", str(db), "--since", SINCE, "--until", UNTIL]
    assert cli_main([*args, "--format", "csv", "--table", "alerts"]) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert row["start"] == "2027-01-15T08:01:00+00:00" and row["end"] == "2027-01-15T08:01:30+00:00"
    assert row["value"] == "40.0" and row["threshold"] == "10.0"
    page = tmp_path / "r.html"
    assert cli_main([*args, "--format", "html", "--out", str(page)]) == 0
    assert "contamination share 40.0 % above 10 %" in page.read_text()


def test_missing_extra_names_the_extra(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    db = _store(tmp_path)
    for name in [m for m in sys.modules if m.split(".")[0] in ("matplotlib", "pyarrow")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    for fmt in ("png", "pdf", "parquet"):
        assert cli_main(["report", "--store", str(db), "--format", fmt, "--out", str(tmp_path / f"r.{fmt}")]) == 2
        err = capsys.readouterr().err
        assert f"--format {fmt} needs the Python package" in err and "pip install 'sorter[report]'" in err
        assert "Traceback" not in err and not (tmp_path / f"r.{fmt}").exists()
    page = tmp_path / "r.html"  # HTML still works, with the figures in words and a note instead of the charts
    assert cli_main(["report", "--store", str(db), "--since", SINCE, "--until", UNTIL, "--format", "html",
                     "--out", str(page)]) == 0
    assert "warning: the page has no charts" in capsys.readouterr().err and "Charts left out" in page.read_text()


def test_alerts_found_by_the_report_add_to_the_stored_ones_without_doubles() -> None:
    from sorter.commands.report import _merge_alerts

    def a(rule: str, start_s: int, end_s: int | None) -> Alert:
        return Alert(rule, "throughput", T0 + start_s * S, None if end_s is None else T0 + end_s * S, 2.0, 5.0, "per min",
                     300.0, "throughput 2.0 per min below 5 per min")

    stored = [a("throughput", 600, 900)]
    evaluated = [a("throughput", 660, 960), a("throughput", 2000, None), a("other", 700, 800)]
    merged = _merge_alerts(stored, evaluated)
    assert [(m.rule, m.t_start_ns) for m in merged] == [("throughput", T0 + 600 * S), ("throughput", T0 + 2000 * S),
                                                         ("other", T0 + 700 * S)]
    assert merged[0].message == stored[0].message and merged[1].message.endswith("[evaluated by this report]")
