"""The line writes one event per finished track into a real SQLite store, with the controller's outcome."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sorter.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
ORACLE = ["--set", "detector.type=oracle"]


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as con:
        return list(con.execute(sql).fetchall())


def test_fast_run_stores_every_confirmed_track_with_its_outcome(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    out = tmp_path / "s.json"
    store = ["--set", f"analytics.store={db}"]
    rc = cli_main(["run", "--fast", "--duration", "20", "--quiet", "--summary", str(out), *ORACLE, *store])
    assert rc == 0
    s = json.loads(out.read_text())
    assert s["events"]["written"] == s["tracks_confirmed"] > 20
    assert s["events"]["dropped"] == 0 and s["events"]["queued"] == 0
    assert _rows(db, "select count(*) from events") == [(s["tracks_confirmed"],)]
    ejected = _rows(db, "select count(*) from events where decision = 'eject' and outcome = 'executed'")[0][0]
    assert ejected == s["commands_executed"] > 0
    assert _rows(db, "pragma journal_mode") == [("wal",)]
    by_class = dict(_rows(db, "select class_name, count(*) from events group by class_name"))
    assert set(by_class) <= {"pet_bottle", "hdpe_container", "alu_can", "cardboard", "paper", "film"}


def test_sigterm_drains_every_finished_event(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    out = tmp_path / "s.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sorter.cli", "run", "--quiet", "--summary", str(out), *ORACLE, "--set", f"analytics.store={db}",
         "--set", "analytics.flush_interval_s=30", "--set", "sim.density_per_m2=3"],
        cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(6.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _o, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert time.monotonic() - t0 < 3.0  # the whole process, interpreter exit included
    s = json.loads(out.read_text())
    assert s["drain_s"] < 1.0  # signal to loop stopped, valves closed, every event written
    # with a 30 s flush interval nothing was written before the signal: the drain wrote them all
    assert s["events"]["written"] == s["tracks_confirmed"] > 0
    assert _rows(db, "select count(*) from events") == [(s["tracks_confirmed"],)]


def test_store_in_a_missing_folder_stops_start_up_with_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = tmp_path / "no-such-folder" / "e.db"
    rc = cli_main(["run", "--fast", "--duration", "1", "--quiet", *ORACLE, "--set", f"analytics.store={where}"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot start" in err and "no-such-folder" in err
    assert not where.parent.exists()  # nothing created behind the user's back


def test_too_little_free_disk_stops_start_up_with_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the threshold is set above the disk's real free space, so the real reading is below it
    rc = cli_main(["run", "--fast", "--duration", "1", "--quiet", *ORACLE, "--set", f"analytics.store={tmp_path / 'e.db'}",
                   "--set", "analytics.min_free_mb=1e9"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot start" in err and f"MB free on {tmp_path}" in err and "analytics.min_free_mb" in err
    assert not (tmp_path / "e.db").exists()


def test_unwritable_flight_recorder_folder_stops_start_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be\n")
    rc = cli_main(["run", "--fast", "--duration", "1", "--quiet", *ORACLE,
                   "--set", f"service.flight_recorder_dir={blocker / 'flight'}"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot start" in err and "service.flight_recorder_dir" in err and "not a writable folder" in err
