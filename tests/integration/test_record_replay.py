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
    # the recording counts from the run's own counters: what the camera captured, what the loop and the recorder dropped
    assert meta["frames_captured"] == run["frames"] + run["frames_dropped"] > 200  # 4 s at 60 fps
    assert meta["frames_dropped_loop"] == run["frames_dropped"]
    assert meta["frames"] + meta["frames_dropped_recorder"] + meta["frames_without_pixels"] == run["frames"]
    assert meta["frames"] + meta["frames_dropped"] == meta["frames_captured"]
    assert meta["complete"] == (meta["frames_dropped"] == 0)
    assert meta["dropped_share"] == round(meta["frames_dropped"] / meta["frames_captured"], 5)
    assert meta["longest_gap_ms"] >= meta["nominal_gap_ms"] * 0.99
    assert {k: v for k, v in run["recording"].items() if k != "error"} == meta
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
        # --allow-gaps: on a loaded machine the recording may miss frames; determinism holds all the same
        assert cli_main(["replay", str(rec), "--quiet", "--allow-gaps", "--summary", str(out), *extra]) == 0
        outs.append(json.loads(out.read_text()))
    a, b, stricter = outs
    assert _strip(a) == _strip(b)
    meta = json.loads((rec / "meta.json").read_text())
    assert a["frames"] == meta["frames"]
    assert a["replay"]["frames_replayed"] == meta["frames"] and a["replay"]["frames_captured"] == meta["frames_captured"]
    assert a["ground_truth"] is False and a["faults"] == {}
    assert a["actuator"]["sent"] == a["commands_sent"]
    if meta["dropped_share"] < 0.3:  # --fast charges the real processing time: a loaded machine records fewer frames
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


def test_a_recording_that_cannot_keep_up_says_so_and_its_replay_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A camera far faster than the loop: most frames never reach the recording, and everything says so."""
    rec = tmp_path / "rec"
    out = tmp_path / "run.json"
    # 240 fps: a frame every 4.2 ms, while rendering and detecting one takes tens of ms on any CPU. The status is
    # shown every status_interval_s of wall time, and a fast machine runs this second of belt in less than the
    # default 0.5 s: a status after every cycle, so that the live status is shown whatever the machine's speed
    args = ["record", str(rec), "--fast", "--duration", "1", "--summary", str(out), "--set", "camera.fps=240",
            "--set", "runtime.status_interval_s=0.001"]
    assert cli_main(args) == 0
    captured = capsys.readouterr()
    run = json.loads(out.read_text())
    meta = json.loads((rec / "meta.json").read_text())
    assert run["frames_dropped"] > 0 and meta["frames_dropped"] == run["frames_dropped"] + meta["frames_dropped_recorder"]
    assert meta["frames_captured"] == run["frames"] + run["frames_dropped"] >= 240
    assert meta["complete"] is False and meta["dropped_share"] > 0.5
    assert meta["longest_gap_ms"] > 3 * meta["nominal_gap_ms"]
    # said while it ran (a warning), in the live status (not a terminal: one line per interval) and in the summary
    assert "is dropping frames" in captured.err and "INCOMPLETE" in captured.err
    assert any("| recording dropped" in line for line in captured.out.splitlines())
    assert f"{meta['frames']} of {meta['frames_captured']} frames written, {meta['frames_dropped']} dropped" in captured.out
    assert "INCOMPLETE" in captured.out

    # replay refuses, with the reason, unless told to go on
    assert cli_main(["replay", str(rec), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and f"{meta['frames_dropped']} of {meta['frames_captured']} captured frames are missing" in err
    assert "--allow-gaps" in err
    summary = tmp_path / "replay.json"
    assert cli_main(["replay", str(rec), "--quiet", "--allow-gaps", "--summary", str(summary)]) == 0
    text = capsys.readouterr().out
    rep = json.loads(summary.read_text())["replay"]
    assert rep["frames_replayed"] == meta["frames"] and rep["frames_captured"] == meta["frames_captured"]
    assert f"replayed          {meta['frames']} of {meta['frames_captured']} captured frames" in text
    # no ground truth in a replay: never a perfect purity or a zero recovery made up
    assert "purity 1.0000" not in text and "recovery          0.0000" not in text and "no ground truth" in text


def test_an_old_recording_whose_meta_hides_its_gaps_is_judged_by_its_stamps(
    recording: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Older recordings wrote ``frames_dropped: 0`` whatever the loop dropped: the frame indices tell the truth."""
    import shutil

    src, _run = recording
    rec = tmp_path / "old"
    shutil.copytree(src, rec)
    with (rec / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    keep = rows[: len(rows) // 3] + rows[2 * len(rows) // 3 :]  # a third of the frames cut out of the middle
    with (rec / "frames.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["frame_index", "t_capture_ns", "s_capture_mm"])
        w.writeheader()
        w.writerows(keep)
    meta = json.loads((src / "meta.json").read_text())
    old = {k: meta[k] for k in ("format", "line", "fps", "width_px", "height_px")}
    (rec / "meta.json").write_text(json.dumps({**old, "frames": len(keep), "frames_dropped": 0}))
    assert cli_main(["replay", str(rec), "--quiet"]) == 2
    err = capsys.readouterr().err
    span = int(keep[-1]["frame_index"]) - int(keep[0]["frame_index"]) + 1
    assert f"{span - len(keep)} of {span} captured frames are missing" in err


def test_a_recording_missing_a_few_frames_replays_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Single frames missing here and there: the scores still mean something, so the replay runs and says what is missing."""
    rec = tmp_path / "few"
    # a slow belt seen at 5 fps: an object stays in view for seconds, so one missing frame is no blind spot (and a
    # loaded machine, which charges --fast its real processing time, drops frames without opening such a gap)
    slow = ["--set", "camera.fps=5", "--set", "belt.nominal_speed_mm_s=250"]
    assert cli_main(["record", str(rec), "--fast", "--duration", "20", "--quiet", *slow]) == 0
    capsys.readouterr()
    with (rec / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 11
    keep = [r for k, r in enumerate(rows) if k % 20 != 10]  # one frame in twenty gone
    with (rec / "frames.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["frame_index", "t_capture_ns", "s_capture_mm"])
        w.writeheader()
        w.writerows(keep)
    meta = json.loads((rec / "meta.json").read_text())
    # the meta counts the recording's own frames as what was captured (on a loaded machine the loop may have dropped
    # some already) and the cut ones as captured but not written
    meta.update(frames=len(keep), frames_captured=len(rows), frames_dropped=len(rows) - len(keep), complete=False)
    (rec / "meta.json").write_text(json.dumps(meta))
    summary = tmp_path / "few.json"
    assert cli_main(["replay", str(rec), "--quiet", "--summary", str(summary), *slow]) == 0
    out = capsys.readouterr()
    missing = len(rows) - len(keep)
    assert f"warning: recording {rec}: {missing} of {len(rows)} captured frames are missing" in out.err
    assert "refused" not in out.err
    rep = json.loads(summary.read_text())["replay"]
    assert rep["frames_replayed"] == len(keep) and rep["frames_missing"] == missing
    assert any(f"{missing} of {len(rows)} captured frames are missing" in w for w in rep["warnings"])
