"""Ground truth for replays of the simulated line: the world a recording shows, rebuilt and scored.

A recording of the simulated line keeps the configuration it was made with (``sim-world.json``, written by
``sorter record``). The simulated world is a closed-form function of time and seed (``sorter.sim.world``) and the
camera looks upstream of every actuator, so the recorded pixels never depend on what was fired: the same world,
rebuilt at the recording's start time, holds every object the frames show. A replay of a new configuration then
fires the world's own virtual valve bank (or robot) with its commands, and the world's scoreboard counts recovery
and purity exactly as a live run of that configuration on that footage would.

The recording does not store the world's start time; it is solved from the recorded encoder readings, which pin
it to well under one encoder count of belt travel (exactly, for ``--fast`` recordings whose first frame is at
the world's start), and every frame is checked against the rebuilt world before it is trusted.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sorter.capture.recording import STAMPS
from sorter.clock import ManualClock
from sorter.config import Config
from sorter.entities import Frame
from sorter.errors import ConfigError

if TYPE_CHECKING:
    from sorter.capture.base import FrameSource
    from sorter.runtime.line import Line
    from sorter.sim.plant import SimPlant
    from sorter.sim.world import SimWorld

WORLD_FILE = "sim-world.json"
WORLD_FORMAT = 1


@dataclass(frozen=True)
class WorldOfRecording:
    """The simulated world a recording shows: its configuration and the monotonic time of its start."""

    config: Config
    t0_ns: int


def write_world_file(rec_dir: str | Path, cfg: Config) -> Path | None:
    """Keep the configuration of a recording made on the simulated line (None: a real camera, nothing written)."""
    if cfg.camera.type != "sim":
        return None
    path = Path(rec_dir) / WORLD_FILE
    doc = {"format": WORLD_FORMAT, "config": cfg.model_dump(mode="json")}
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def read_world_config(rec_dir: str | Path) -> Config | None:
    """The configuration a simulated recording was made with; None for footage of a real camera."""
    path = Path(rec_dir) / WORLD_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != WORLD_FORMAT:
            raise ConfigError(f"{path}: format {doc.get('format')!r}; this sorter reads format {WORLD_FORMAT}")
        return Config.model_validate(doc["config"])
    except (OSError, ValueError, KeyError, AttributeError) as e:
        raise ConfigError(f"{path} cannot be used ({type(e).__name__}: {e}); delete it to replay without ground truth") from None


def read_stamps(rec_dir: str | Path) -> list[tuple[int, float]]:
    """``(t_capture_ns, s_capture_mm)`` of every recorded frame."""
    with (Path(rec_dir) / STAMPS).open(encoding="utf-8") as f:
        return [(int(r["t_capture_ns"]), float(r["s_capture_mm"])) for r in csv.DictReader(f)]


def _world(cfg: Config, t0_ns: int) -> SimWorld:
    from sorter.runtime.params import target_class_ids
    from sorter.sim.plant import SimPlant

    return SimPlant(cfg, ManualClock(t0_ns), target_class_ids(cfg)).world


def fit_world_start(cfg: Config, stamps: Sequence[tuple[int, float]]) -> tuple[int | None, str]:
    """Solve the world's start time from the recorded encoder readings and check every frame against it.

    Each frame ``k`` read ``c_k`` encoder counts at ``t_k``: the world started between ``t_k - T((c_k + 1) / cpm)``
    and ``t_k - T(c_k / cpm)``, where ``T`` inverts the belt's odometer. The latest start every frame allows is
    taken (exact when a frame was captured at the start itself, as in ``--fast`` recordings).

    Returns:
        ``(t0_ns, "")``, or ``(None, reason)`` when the frames do not come from this world.
    """
    if not stamps:
        return None, "the recording has no frames"
    cpm = cfg.belt.encoder_counts_per_mm
    belt = _world(cfg, 0).belt
    lo, hi = -math.inf, math.inf
    counts: list[int] = []
    for t_ns, s_mm in stamps:
        c = round(s_mm * cpm)
        if abs(c / cpm - s_mm) > 1e-3:
            return None, f"s_capture_mm {s_mm} is not a whole number of encoder counts of the simulated belt"
        counts.append(c)
        lo = max(lo, t_ns - belt.t_at_s((c + 1) / cpm) * 1e9)
        hi = min(hi, t_ns - belt.t_at_s(c / cpm) * 1e9)
    if lo > hi + 1.0:
        return None, f"no start time fits every frame (the window closes by {(lo - hi) / 1e3:.1f} us)"
    t0 = round(hi)
    world_belt_s = [belt.s_mm((t - t0) * 1e-9) for t, _s in stamps]
    worst = max(abs(math.floor(s * cpm) - c) for s, c in zip(world_belt_s, counts, strict=True))
    if worst > 1:
        return None, f"the rebuilt belt is {worst} encoder counts off the recorded odometer"
    return t0, ""


def world_of_recording(rec_dir: str | Path) -> tuple[WorldOfRecording | None, str]:
    """The world a recording shows, or None and why not (footage of a real camera, or frames that do not fit)."""
    cfg = read_world_config(rec_dir)
    if cfg is None:
        return None, f"no {WORLD_FILE}: footage of a real camera (or recorded before ground truth was kept)"
    t0, why = fit_world_start(cfg, read_stamps(rec_dir))
    if t0 is None:
        return None, f"{WORLD_FILE} does not match the frames: {why}"
    return WorldOfRecording(cfg, t0), ""


def world_config(recorded: Config, replay_cfg: Config) -> Config:
    """The rebuilt world: the recording's belt, camera and simulation; the valves or robot of the replayed config.

    The actuator geometry (valve count, pitch, ejection line, robot window) and the targets are what a sweep
    compares, so they come from the configuration under test; the belt, the camera mount and the objects are
    what was filmed.
    """
    return replay_cfg.model_copy(update={"sim": recorded.sim, "belt": recorded.belt, "camera": recorded.camera})


class GroundTruthSource:
    """The recording's frames, with the rebuilt world brought to each frame's capture time first.

    Capturing (without drawing) at each recorded stamp is what the live line did: it runs the world's due
    valve pulses and records how visible each object was in the frames the line processed.
    """

    def __init__(self, source: FrameSource, world: SimWorld) -> None:
        self.source = source
        self.world = world

    def start(self) -> None:
        self.source.start()

    def latest(self, timeout_s: float) -> Frame | None:
        frame = self.source.latest(timeout_s)
        if frame is not None:
            self.world.capture(max(frame.t_capture_ns, self.world.now_ns), frame.frame_index, render=False)
        return frame

    @property
    def frames_dropped(self) -> int:
        return self.source.frames_dropped

    @property
    def ended(self) -> bool:
        return bool(getattr(self.source, "ended", False))

    def close(self) -> None:
        self.source.close()


def attach_ground_truth(line: Line, world: WorldOfRecording, source: FrameSource) -> FrameSource:
    """Rewire a replay line (``build_line(..., replay=True)``) to fire and score the rebuilt world.

    The line's dry-run actuator is replaced by the virtual actuator of the rebuilt world's valve bank or robot,
    and its plant by the simulated plant, whose scoreboard the run summary reads. Returns the frame source to
    replay (the recording's frames, the world following them).
    """
    from sorter.actuate.registry import create_actuator
    from sorter.runtime.params import target_class_ids
    from sorter.sim.plant import SimPlant

    cfg = line.cfg
    plant: SimPlant = SimPlant(world_config(world.config, cfg), ManualClock(world.t0_ns), target_class_ids(cfg))
    plant.prepare(render=False)
    virtual_cfg = cfg.model_copy(update={"actuator": cfg.actuator.model_copy(update={"type": "virtual"})})
    actuator = create_actuator(virtual_cfg, line.clock, plant.port())
    line.actuator.close()
    line.actuator = actuator
    line.plant = plant
    return GroundTruthSource(source, plant.world)
