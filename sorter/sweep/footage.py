"""Recordings of the simulated line rendered frame by frame: the same footage whatever the machine's load.

``sorter record --fast`` records what the line processed, and on a loaded machine it processes fewer frames.
A sweep compares settings on footage, so its footage must not depend on the machine that made it: this renders
the simulated camera at fixed stamps (every ``stride``-th camera frame from the world's start), writes them as a
recording (the same format ``sorter record`` writes, with the world file), and nothing else runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sorter.clock import ManualClock
from sorter.config import Config
from sorter.errors import ConfigError

#: frames waiting for the encoder thread before rendering pauses (keeps memory flat)
MAX_PENDING_FRAMES = 8


def render_recording(cfg: Config, out_dir: str | Path, duration_s: float, stride: int = 1) -> dict[str, Any]:
    """Render ``duration_s`` of the simulated line's camera into a new recording folder.

    Args:
        cfg: a configuration of the simulated line (``camera.type: sim``): its world, belt and camera.
        out_dir: new recording folder (must not exist or be empty).
        duration_s: seconds of belt from the world's start.
        stride: keep every ``stride``-th camera frame (3 at 60 fps: a 20 fps recording).

    Returns:
        The recording's ``meta`` (frames written, size, any error).
    """
    from sorter.capture.recording import RecordingWriter
    from sorter.runtime.params import target_class_ids
    from sorter.sim.plant import SimPlant
    from sorter.sweep.truth import write_world_file

    if cfg.camera.type != "sim":
        raise ConfigError(f"camera.type = {cfg.camera.type!r}: only the simulated line can be rendered; record a real line "
                          "with 'sorter record'")
    if duration_s <= 0 or stride < 1:
        raise ConfigError(f"duration {duration_s:g} s and stride {stride}: need a positive duration and a stride >= 1")
    plant = SimPlant(cfg, ManualClock(0), target_class_ids(cfg))
    plant.prepare(render=True)
    period_ns = 1e9 / cfg.camera.fps
    n_frames = int(duration_s * cfg.camera.fps / stride)
    writer = RecordingWriter(out_dir, cfg.camera.fps / stride, cfg.line.name, max_queue=MAX_PENDING_FRAMES + 2)
    try:
        for k in range(n_frames):
            camera_frame = k * stride
            frame = plant.world.capture(round(camera_frame * period_ns), camera_frame, render=True)
            while writer.pending >= MAX_PENDING_FRAMES:
                time.sleep(0.002)
            writer.add_frame(frame)
    finally:
        meta = writer.close()
    write_world_file(out_dir, cfg)
    return meta
