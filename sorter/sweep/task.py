"""One sweep task: a deterministic replay of one recording with one configuration, as ``sorter replay`` runs it.

The function here is what a Ray worker runs, and what the sequential mode calls in a loop, so both give the same
summary. The replay's clock is each recorded frame's stamp, so nothing in the summary depends on how fast or
where it ran, except the wall-clock fields (:data:`WALL_CLOCK_FIELDS`).
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sorter.config import Config

#: summary fields that measure the machine, not the sorting (they differ between any two runs)
WALL_CLOCK_FIELDS = ("latency_ms", "realtime_factor", "wall_s")


@dataclass(frozen=True)
class ReplayTask:
    """What one task replays.

    Attributes:
        index: position in the sweep (results come back in this order).
        recording: the recording's name in the sweep (its folder name, made unique).
        setting: the setting's id (``s000``...).
        config: the validated configuration, as JSON-ready data (loaded and checked once, by the caller).
    """

    index: int
    recording: str
    setting: str
    config: dict[str, Any]


@dataclass
class TaskResult:
    """The outcome of one task: the replay summary, or the error that stopped it."""

    index: int
    recording: str
    setting: str
    summary: dict[str, Any] | None
    ground_truth: str
    error: str | None = None
    host: str = ""
    task_wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def sorting_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without its wall-clock fields: what must be identical wherever and however the replay ran."""
    return {k: v for k, v in summary.items() if k not in WALL_CLOCK_FIELDS}


def replay(rec_dir: Path, cfg: Config) -> tuple[dict[str, Any], str]:
    """Replay ``rec_dir`` with ``cfg`` and return the summary and how it was scored.

    A recording of the simulated line is scored against the world it shows (see ``sorter.sweep.truth``):
    ``ground_truth`` then says "simulated world ..."; otherwise it gives the reason there is none, and the
    summary has no recovery or purity worth reading (tracks and commands only), as with ``sorter replay``.
    """
    from sorter.capture.recording import RecordingSource
    from sorter.runtime.line import build_line
    from sorter.runtime.loops import run_line
    from sorter.sweep.truth import attach_ground_truth, world_of_recording

    world, why_not = world_of_recording(rec_dir)
    if world is not None:
        cfg = cfg.model_copy(update={"sim": world.config.sim})  # the camera model of a simulated recording: its true mount
    source = RecordingSource(rec_dir)
    line = build_line(cfg, fast=False, replay=True)
    try:
        replayed = attach_ground_truth(line, world, source) if world is not None else source
    except BaseException:
        line.close()
        raise
    try:
        summary = run_line(line, None, False, threading.Event(), None, replay_source=replayed)
    finally:
        # run_line freezes everything alive into the permanent generation (for a live loop's sake); a worker that
        # runs task after task must let the collector see this task's objects again.
        gc.unfreeze()
        gc.collect()
    truth = f"simulated world (seed {world.config.sim.seed})" if world is not None else why_not
    return summary, truth


def run_task(task: ReplayTask, rec_dir: Path) -> TaskResult:
    """Run one task; an exception becomes the result's ``error`` (one bad setting does not stop a sweep)."""
    import socket

    t0 = time.perf_counter()
    try:
        cfg = Config.model_validate(task.config)
        summary, truth = replay(rec_dir, cfg)
        return TaskResult(task.index, task.recording, task.setting, summary, truth, None, socket.gethostname(),
                          round(time.perf_counter() - t0, 3))
    except Exception as e:
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        return TaskResult(task.index, task.recording, task.setting, None, "", detail, socket.gethostname(),
                          round(time.perf_counter() - t0, 3))
