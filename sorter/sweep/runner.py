"""Run a sweep: every (recording, setting) pair, one after another or as Ray tasks, results in sweep order.

Each pair is one call of :func:`sorter.sweep.task.run_task`, wherever it runs, so a sweep on a laptop, on a local
Ray instance or on a cluster gives the same summaries. Configurations are loaded and validated here, once, before
anything runs: a bad setting stops the sweep with the setting's id, not halfway through.

On a cluster the workers read the recordings from the same paths as the caller (shared storage).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.errors import ConfigError
from sorter.sweep.cluster import map_in_order
from sorter.sweep.grid import SweepGrid
from sorter.sweep.task import ReplayTask, TaskResult, run_task

#: called after each finished task with (done, total, result)
Progress = Callable[[int, int, TaskResult], None]


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep runs: the grid, the recordings by name, and one task per (recording, setting)."""

    grid: SweepGrid
    recordings: dict[str, Path]
    tasks: tuple[ReplayTask, ...]


def recording_names(paths: Sequence[Path]) -> dict[str, Path]:
    """Name each recording by its folder name, made unique with a suffix (``rec``, ``rec-2``...)."""
    out: dict[str, Path] = {}
    for p in paths:
        if not p.is_dir():
            raise ConfigError(f"--recordings: '{p}' is not a folder; pass folders written by 'sorter record'")
        from sorter.capture.recording import read_info

        read_info(p)  # a clear error now for a folder that is not a recording
        name, n = p.resolve().name, 2
        while name in out:
            name, n = f"{p.resolve().name}-{n}", n + 1
        out[name] = p.resolve()
    if not out:
        raise ConfigError("--recordings: give at least one recording folder")
    return out


def plan_sweep(grid: SweepGrid, recordings: Sequence[Path]) -> SweepPlan:
    """Load and validate every setting's configuration and lay out the tasks (recording-major order)."""
    from sorter.runtime.preflight import load_line_config

    recs = recording_names(recordings)
    configs: list[dict[str, Any]] = []
    for s in grid.settings:
        try:
            cfg = load_line_config(list(grid.base_configs) or None, [*grid.base_overrides(), *s.overrides()])
        except ConfigError as e:
            problems = "; ".join(e.problems)
            raise ConfigError(f"{grid.source}: setting {s.id} ({s.label()}) is not a valid configuration: {problems}") from None
        if cfg.detector.type == "oracle":
            raise ConfigError(
                f"{grid.source}: detector.type = 'oracle' cannot replay footage (it reads the simulator, not pixels); "
                "set base.set detector.type: onnxruntime (or tensorrt, torch)"
            )
        configs.append(cfg.model_dump(mode="json"))
    tasks = tuple(
        ReplayTask(i * len(grid.settings) + j, rec, s.id, configs[j])
        for i, rec in enumerate(recs)
        for j, s in enumerate(grid.settings)
    )
    return SweepPlan(grid, recs, tasks)


def run_sequential(plan: SweepPlan, progress: Progress | None = None) -> list[TaskResult]:
    """Every task in this process, one after another."""
    out = []
    for task in plan.tasks:
        out.append(run_task(task, plan.recordings[task.recording]))
        if progress is not None:
            progress(len(out), len(plan.tasks), out[-1])
    return out


def _remote_task(task: ReplayTask, rec_dir: str) -> TaskResult:
    """What a Ray worker runs (module level, so workers import it rather than unpickle code)."""
    return run_task(task, Path(rec_dir))


def run_on_ray(plan: SweepPlan, address: str | None = None, num_cpus: int | None = None,
               progress: Progress | None = None) -> list[TaskResult]:
    """Every task as a Ray task (one CPU each); results in sweep order whatever order they finish in."""
    done = [0]

    def finished(n: int, result: Any) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], len(plan.tasks), _as_result(plan.tasks[n], result))

    calls = [(t, str(plan.recordings[t.recording])) for t in plan.tasks]
    raw = map_in_order(_remote_task, calls, address, num_cpus, finished)
    return [_as_result(t, r) for t, r in zip(plan.tasks, raw, strict=True)]


def _as_result(task: ReplayTask, result: Any) -> TaskResult:
    """A worker's result, or the exception of a task that died (a replay's own errors come back as results)."""
    if isinstance(result, TaskResult):
        return result
    return TaskResult(task.index, task.recording, task.setting, None, "", f"Ray task failed: {result}")
