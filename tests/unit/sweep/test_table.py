"""Sweep tables: pooled per-setting metrics, the Pareto front, the ranking, sensitivity, CSV and Parquet."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from sorter.sweep.grid import RankMetric, parse_grid
from sorter.sweep.table import flatten, pareto_front, per_setting, ranked, run_rows, sensitivity, write_csv, write_parquet
from sorter.sweep.task import TaskResult


def _summary(passed: int, ejected: int, wrong: int, p99: float) -> dict[str, Any]:
    return {"targets_passed": passed, "targets_ejected": ejected, "nontargets_ejected": wrong,
            "recovery": ejected / passed, "purity": ejected / max(1, ejected + wrong),
            "fire_position_error_mm": {"p50": 1.0, "p99": p99}, "latency_ms": {"detect": {"p50": 3.0}}, "wall_s": 9.0}


def _results() -> tuple[Any, list[TaskResult]]:
    grid = parse_grid({"grid": {"detector.min_score": [0.3, 0.5, 0.7]}}, Path("s.yaml"))
    data = {  # setting -> per recording (passed, ejected, wrong, p99)
        "s000": [(10, 10, 4, 5.0), (30, 27, 2, 7.0)],
        "s001": [(10, 9, 1, 4.0), (30, 27, 0, 5.0)],
        "s002": [(10, 5, 0, 3.0), (30, 20, 1, 3.0)],
    }
    results = []
    for setting, runs in data.items():
        for rec, (p, e, w, q) in zip(("a", "b"), runs, strict=True):
            results.append(TaskResult(len(results), rec, setting, _summary(p, e, w, q), "simulated world (seed 1)"))
    results.append(TaskResult(len(results), "c", "s002", None, "", "RecordingError: broken"))
    return grid, results


def test_flatten_dots_nested_values_and_drops_wall_clock() -> None:
    f = flatten(_summary(4, 2, 1, 5.0))
    assert f["fire_position_error_mm.p99"] == 5.0 and "wall_s" not in f and not any(k.startswith("latency_ms") for k in f)


def test_per_setting_pools_recovery_and_purity_over_recordings() -> None:
    grid, results = _results()
    s = {x.setting: x for x in per_setting(grid, results)}
    assert s["s000"].metrics["recovery"] == pytest.approx(37 / 40)  # pooled, not the mean of 1.0 and 0.9
    assert s["s000"].metrics["purity"] == pytest.approx(37 / 43)
    assert s["s001"].metrics["fire_position_error_mm.p99"] == pytest.approx(4.5)
    assert s["s002"].errors == {"c": "RecordingError: broken"} and set(s["s002"].by_recording) == {"a", "b"}


def test_pareto_front_and_ranking() -> None:
    assert pareto_front([(0.9, 0.8), (0.8, 0.9), (0.7, 0.7), (0.9, 0.8), (float("nan"), 1.0)]) == [1, 0, 3]
    grid, results = _results()
    settings = per_setting(grid, results)
    pts = [(x.metrics["recovery"], x.metrics["purity"]) for x in settings]
    assert [settings[i].setting for i in pareto_front(pts)] == ["s001", "s000"]  # s002 is beaten by s001 on both
    by_recovery = ranked(settings, [RankMetric("recovery", "max")])
    assert [x.setting for x in by_recovery] == ["s000", "s001", "s002"]  # 37/40, 36/40, 25/40
    by_p99 = ranked(settings, [RankMetric("fire_position_error_mm.p99", "min")])
    assert by_p99[-1].setting == "s002"  # lowest p99, but it has a failed recording: errors rank last


def test_sensitivity_groups_by_value() -> None:
    grid, results = _results()
    rows = sensitivity(per_setting(grid, results), "detector.min_score", "recovery")
    assert [r[0] for r in rows] == [0.3, 0.5, 0.7]
    assert rows[2][1] == pytest.approx(25 / 40)


def test_tables_write_every_run(tmp_path: Path) -> None:
    grid, results = _results()
    rows = run_rows(grid, results)
    write_csv(rows, tmp_path / "runs.csv")
    with (tmp_path / "runs.csv").open() as f:
        read = list(csv.DictReader(f))
    assert len(read) == 7 and read[0]["detector.min_score"] == "0.3" and read[-1]["error"] == "RecordingError: broken"
    assert list(read[0])[:3] == ["recording", "setting", "label"] and list(read[0])[-1] == "task_wall_s"
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs pyarrow (the report extra)")
    assert write_parquet(rows, tmp_path / "runs.parquet")
    table = pq.read_table(tmp_path / "runs.parquet")
    assert table.num_rows == 7 and table.column("targets_ejected").to_pylist()[:2] == [10, 27]
