"""Ground truth of simulated recordings: the world's start solved from the recorded odometer, and refused when the
frames do not come from that world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sorter.clock import ManualClock
from sorter.errors import ConfigError
from sorter.runtime.params import target_class_ids
from sorter.runtime.preflight import load_line_config
from sorter.sim.plant import SimPlant
from sorter.sweep.truth import WORLD_FILE, fit_world_start, read_world_config, write_world_file


def _stamps(t0_ns: int, frame_times_s: list[float]) -> list[tuple[int, float]]:
    cfg = load_line_config(None, [])
    world = SimPlant(cfg, ManualClock(t0_ns), target_class_ids(cfg)).world
    out = []
    for k, t_s in enumerate(frame_times_s):
        f = world.capture(t0_ns + round(t_s * 1e9), k, render=False)
        out.append((f.t_capture_ns, f.s_capture_mm))
    return out


def test_the_world_start_is_solved_from_the_odometer() -> None:
    cfg = load_line_config(None, [])
    t0 = 7_000_000_000
    exact, why = fit_world_start(cfg, _stamps(t0, [0.0, 0.05, 0.1, 0.5, 1.0]))
    assert why == "" and exact == t0  # a frame at the start pins it exactly
    late, why = fit_world_start(cfg, _stamps(t0, [0.2, 0.35, 0.9]))
    assert why == "" and late is not None
    assert abs(late - t0) * 1e-9 * cfg.belt.nominal_speed_mm_s < 1.0 / cfg.belt.encoder_counts_per_mm  # within a count


def test_frames_of_another_world_are_refused() -> None:
    cfg = load_line_config(None, [])
    stamps = _stamps(0, [0.0, 0.1, 0.2, 0.3])
    t, s = stamps[2]
    bad = [*stamps[:2], (t, s + 5.0), stamps[3]]  # the belt jumps 5 mm for one frame
    t0, why = fit_world_start(cfg, bad)
    assert t0 is None and why
    assert fit_world_start(cfg, []) == (None, "the recording has no frames")


def test_world_file_round_trip_and_bad_files(tmp_path: Path) -> None:
    cfg = load_line_config(None, ["sim.seed=5"])
    assert write_world_file(tmp_path, cfg) == tmp_path / WORLD_FILE
    back = read_world_config(tmp_path)
    assert back is not None and back.sim.seed == 5
    assert read_world_config(tmp_path / "nothing") is None
    (tmp_path / WORLD_FILE).write_text(json.dumps({"format": 99, "config": {}}))
    with pytest.raises(ConfigError, match=f"{WORLD_FILE}.*format 99"):
        read_world_config(tmp_path)
