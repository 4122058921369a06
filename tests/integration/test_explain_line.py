"""`sorter run --explain` on the simulated line: every sorting failure gets one cause, checked against the score."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2

from sorter.cli import main as cli_main
from sorter.sim.explain_history import CAUSES


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "summary.json"
    assert cli_main(["run", "--quiet", "--fast", "--explain", "--summary", str(out), "--set", "detector.type=oracle", *args]) == 0
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _check_sums(s: dict[str, Any]) -> dict[str, Any]:
    ex: dict[str, Any] = s["explain"]
    # the summary's ejected counts include picks
    assert ex["targets_missed"] == s["targets_passed"] - s["targets_ejected"]
    assert ex["nontargets_removed"] == s["nontargets_ejected"]
    assert list(ex["causes"]) == list(CAUSES)
    assert sum(r["target_missed"] for r in ex["causes"].values()) == ex["targets_missed"]
    assert sum(r["nontarget_removed"] for r in ex["causes"].values()) == ex["nontargets_removed"]
    assert len(ex["cases"]) == ex["targets_missed"] + ex["nontargets_removed"]
    for case in ex["cases"]:
        assert case["cause"] in CAUSES and case["detail"]
    return ex


def test_dense_airjet_run_explains_every_failure(tmp_path: Path) -> None:
    # 4 objects/m2: piles, hidden objects and co-ejected neighbours give failures of several kinds
    s = _run(tmp_path, "--duration", "20", "--set", "sim.density_per_m2=4")
    ex = _check_sums(s)
    assert ex["targets_missed"] + ex["nontargets_removed"] >= 3
    for case in ex["cases"]:
        if case["kind"] == "nontarget_removed":
            assert case["command_id"] is not None and case["track_id"] > 0  # removed by a shot the planner issued
        if case["cause"] == "not_visible":
            assert case["max_visible_fraction"] < 0.5
        if case["first_frame"] >= 0:
            assert case["last_frame"] >= case["first_frame"]
    strip = cv2.imread(ex["strip"])
    assert strip is not None and strip.shape[0] >= 100
    assert Path(ex["strip"]) == tmp_path / "summary.explain.png"


def test_robot_run_explains_every_failure(tmp_path: Path) -> None:
    s = _run(tmp_path, "--duration", "20", "--config", "sim-robot.yaml", "--explain-strip", str(tmp_path / "robot.png"))
    ex = _check_sums(s)
    assert (tmp_path / "robot.png").is_file()
    assert s["targets_passed"] >= 5
    for case in ex["cases"]:  # a failure past the tracker names the track and, past the planner, the command
        if case["cause"] in ("wrong_class", "track_lost_or_swapped", "fire_position_off", "actuator_busy_or_rate_limited"):
            assert case["track_id"] > 0
        if case["cause"] == "fire_position_off":
            assert case["command_id"] is not None
