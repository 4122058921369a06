"""`sorter record` writes frames, stamps and controller reports; `sorter replay` re-runs them deterministically."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from sorter.cli import main as cli_main
from sorter.runtime.accounting import WALL_CLOCK_KEYS

#: a replay measures its stages on this machine (the recording's --fast run charged its profile's times)
TIMING = WALL_CLOCK_KEYS | {"latency_ms"}


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in TIMING}


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    d = tmp_path_factory.mktemp("rec")
    rec = d / "rec"
    out = d / "run.json"
    args = ["record", str(rec), "--fast", "--duration", "4", "--quiet", "--summary", str(out), "--set", "sim.density_per_m2=2"]
    assert cli_main(args) == 0
    return rec, json.loads(out.read_text())


def test_recording_holds_every_processed_frame_and_the_reports(recording: tuple[Path, dict[str, Any]]) -> None:
    rec, run = recording
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["frames"] + meta["frames_dropped"] == run["frames"] > 60
    with (rec / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == meta["frames"]
    stamps = [int(r["t_capture_ns"]) for r in rows]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    with (rec / "reports.csv").open() as f:
        executed = [r for r in csv.DictReader(f) if r["status"] == "executed"]
    assert len(executed) == run["commands_executed"]
    assert run["recording"]["error"] is None


def test_replay_is_deterministic_and_compares_configs(recording: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    rec, _run = recording
    outs = []
    for k, extra in enumerate(([], [], ["--set", "detector.min_score=0.7"])):
        out = tmp_path / f"replay{k}.json"
        assert cli_main(["replay", str(rec), "--quiet", "--summary", str(out), *extra]) == 0
        outs.append(json.loads(out.read_text()))
    a, b, stricter = outs
    assert _strip(a) == _strip(b)
    assert a["frames"] == json.loads((rec / "meta.json").read_text())["frames"]
    assert a["tracks_confirmed"] > 10 and a["commands_sent"] > 0
    assert a["actuator"] == {"sent": a["commands_sent"], "cancelled": 0} and a["commands_executed"] == 0  # dry run
    assert stricter["tracks_confirmed"] <= a["tracks_confirmed"]
    assert _strip(stricter) != _strip(a)


def test_bad_recordings_and_configs_are_refused(recording: tuple[Path, dict[str, Any]], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rec, _run = recording
    assert cli_main(["record", str(rec), "--fast", "--duration", "1", "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert cli_main(["replay", str(tmp_path), "--quiet"]) == 2
    assert "not a sorter recording" in capsys.readouterr().err
    assert cli_main(["replay", str(rec), "--quiet", "--set", "detector.type=oracle"]) == 2
    assert "looks at pixels" in capsys.readouterr().err
