"""`sorter sweep`: replays of a rendered recording give the same summaries one by one, on a local Ray, and on a Ray
head started on loopback; the results folder holds the tables, the charts and the page."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sorter.cli import main as cli_main
from sorter.runtime.preflight import load_line_config
from sorter.sweep.footage import render_recording
from sorter.sweep.grid import load_grid
from sorter.sweep.runner import SweepPlan, plan_sweep, run_sequential
from sorter.sweep.task import TaskResult, sorting_fields

SWEEP = """\
base:
  set: {detector.type: onnxruntime}
grid:
  detector.min_score: [0.3, 0.8]
rank: [recovery, purity]
"""


def _needs_ray() -> Any:
    return pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1.5 s recording of the simulated line at 20 fps (rendered frame by frame: the same on any machine)."""
    d = tmp_path_factory.mktemp("sweep")
    meta = render_recording(load_line_config(None, ["sim.density_per_m2=2"]), d / "rec", 1.5, stride=3)
    assert meta["frames"] == 30 and meta["error"] is None
    (d / "sweep.yaml").write_text(SWEEP)
    return d


@pytest.fixture(scope="module")
def plan(sweep_dir: Path) -> SweepPlan:
    return plan_sweep(load_grid(sweep_dir / "sweep.yaml"), [sweep_dir / "rec"])


@pytest.fixture(scope="module")
def sequential(plan: SweepPlan) -> list[TaskResult]:
    return run_sequential(plan)


def test_sequential_replays_are_scored_and_settings_differ(sequential: list[TaskResult]) -> None:
    loose, strict = sequential
    for r in sequential:
        assert r.error is None and r.summary is not None
        assert r.ground_truth == "simulated world (seed 1)"
        assert r.summary["frames"] == 30 and r.summary["targets_passed"] >= 1
    assert loose.summary is not None and strict.summary is not None
    assert loose.summary["tracks_confirmed"] > strict.summary["tracks_confirmed"]  # min_score 0.8 misses objects
    assert loose.summary["targets_ejected"] >= strict.summary["targets_ejected"]


def test_a_second_sequential_run_is_identical(plan: SweepPlan, sequential: list[TaskResult]) -> None:
    again = run_sequential(plan)
    assert [sorting_fields(r.summary or {}) for r in again] == [sorting_fields(r.summary or {}) for r in sequential]


def test_local_ray_gives_the_sequential_results(plan: SweepPlan, sequential: list[TaskResult], ray_token: str) -> None:
    _needs_ray()
    from sorter.sweep.runner import run_on_ray

    seen: list[int] = []
    on_ray = run_on_ray(plan, num_cpus=2, progress=lambda done, total, r: seen.append(done))
    assert seen == [1, 2]
    assert [(r.recording, r.setting, r.error) for r in on_ray] == [(r.recording, r.setting, None) for r in sequential]
    assert [sorting_fields(r.summary or {}) for r in on_ray] == [sorting_fields(r.summary or {}) for r in sequential]


def test_sweep_on_a_ray_head_on_loopback_writes_identical_results(
    ray_head: str, sweep_dir: Path, sequential: list[TaskResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    args = ["sweep", "--recordings", str(sweep_dir / "rec"), "--grid", str(sweep_dir / "sweep.yaml"), "--address", ray_head,
            "--out", str(out)]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert f"Ray at {ray_head}" in printed and "[2/2]" in printed
    doc = json.loads((out / "sweep.json").read_text())
    assert [sorting_fields(r["summary"]) for r in doc["results"]] == [
        json.loads(json.dumps(sorting_fields(r.summary or {}))) for r in sequential]
    with (out / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["setting"], r["detector.min_score"]) for r in rows] == [("s000", "0.3"), ("s001", "0.8")]
    assert [int(r["targets_ejected"]) for r in rows] == [r.summary["targets_ejected"] for r in sequential if r.summary]
    with (out / "settings.csv").open() as f:
        settings = list(csv.DictReader(f))
    assert settings[0]["rank"] == "1" and {s["setting"] for s in settings} == {"s000", "s001"}
    page = (out / "index.html").read_text()
    assert "Pareto front" in page and "s000" in page
    pytest.importorskip("matplotlib", reason="charts need matplotlib (the report extra)")
    for png in ("recovery_purity.png", "sensitivity.png", "spread.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f'src="{png}"' in page


def test_sweep_refuses_bad_input(sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: {detector.min_score: [0.3, 2.0]}\nbase: {set: {detector.type: onnxruntime}}\n")
    args = ["sweep", "--recordings", str(sweep_dir / "rec"), "--grid", str(bad), "--out", str(tmp_path / "o"), "--sequential"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "setting s001 (min_score=2)" in err and "detector.min_score" in err
    args[2] = str(tmp_path)  # a folder that is not a recording
    args[4] = str(sweep_dir / "sweep.yaml")
    assert cli_main(args) == 2
    assert "not a sorter recording" in capsys.readouterr().err
    oracle = tmp_path / "oracle.yaml"
    oracle.write_text("grid: {detector.min_score: [0.3]}\nbase: {set: {detector.type: oracle}}\n")
    args[2], args[4] = str(sweep_dir / "rec"), str(oracle)
    assert cli_main(args) == 2
    assert "cannot replay footage" in capsys.readouterr().err


def test_sorter_works_without_ray() -> None:
    """`import sorter`, `sorter --help` and `sorter sweep --help` never import Ray; asking for it says how to install."""
    code = (
        "import sys; sys.modules['ray'] = None\n"  # any `import ray` now fails as if Ray were not installed
        "from sorter.cli import main\n"
        "for argv in (['--help'], ['sweep', '--help']):\n"
        "    try: main(argv)\n"
        "    except SystemExit as e: assert e.code == 0\n"
        "from sorter.sweep.cluster import import_ray, RayMissingError\n"
        "try: import_ray()\n"
        "except RayMissingError as e: print('MISSING', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "--address ADDRESS" in out and "MISSING Ray is not installed" in out and "'.[ray]'" in out
