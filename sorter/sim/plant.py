"""The simulated plant: everything a virtual line is made of, built from the config into one object.

A plant is the physical side of a line: where frames come from, what the
belt's odometer reads, what the actuator drives, and (here) how well it went.
:class:`SimPlant` holds the simulated world (belt and objects), the virtual
camera (its true mount, rendered frames for live runs, captures at given times
for ``--fast``), the virtual encoder, the valve bank or robot (lent to the
actuator through :class:`sorter.sim.outputs.SimOutputs`: in process, behind a
controller emulator, or switched by host timing) and the scoreboard. It sits
behind the same small protocol as a real plant (``sorter.runtime.plant.Plant``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sorter.entities import MATERIAL_CLASSES, Frame
from sorter.sim.ejector import ValveBankModel
from sorter.sim.frame_source import SimFrameSource
from sorter.sim.mount import sim_camera_model
from sorter.sim.outputs import SimOutputs
from sorter.sim.robot import RobotModel
from sorter.sim.scene import Exposure
from sorter.sim.scoring import Scoreboard
from sorter.sim.world import SimWorld

if TYPE_CHECKING:
    from sorter.actuate.base import Actuator
    from sorter.clock import Clock
    from sorter.config import Config


class SimPlant:
    """A simulated line (``camera.type: sim``).

    Args:
        cfg: the configuration (``sim``, ``belt``, ``camera``, ``airjet`` or ``robot``).
        clock: the line's clock; simulated time 0 is its reading now.
        target_class_ids: what the scoreboard counts as targets.
    """

    odometer_source = "simulated encoder"
    source = None  # the live frame source is made per run (``live_source``)

    def __init__(self, cfg: Config, clock: Clock, target_class_ids: frozenset[int]) -> None:
        self.cfg = cfg
        self.clock = clock
        self.world = SimWorld(
            cfg.sim,
            belt_width_mm=cfg.belt.width_mm,
            nominal_speed_mm_s=cfg.belt.nominal_speed_mm_s,
            encoder_counts_per_mm=cfg.belt.encoder_counts_per_mm,
            camera=sim_camera_model(cfg),
            class_names=MATERIAL_CLASSES,
            t0_ns=clock.now_ns(),
        )
        self.device = self._add_device(cfg)
        self.scoreboard: Scoreboard | None = self.world.scoreboard(target_class_ids=target_class_ids)
        self.outputs = SimOutputs(self.world, self.device)
        self.render = False
        self._odometer: Callable[[int], float] | None = None

    def _add_device(self, cfg: Config) -> ValveBankModel | RobotModel:
        if cfg.line.mode == "airjet":
            v = cfg.airjet.valves
            return self.world.add_valve_bank(
                valve_count=v.count, valve_pitch_mm=v.pitch_mm, valve_x_first_mm=v.x_first_mm, y_eject_mm=cfg.airjet.y_eject_mm
            )
        r = cfg.robot
        return self.world.add_robot(
            window_y_start_mm=r.window_y_start_mm, window_y_end_mm=r.window_y_end_mm, x_min_mm=r.x_min_mm, x_max_mm=r.x_max_mm
        )

    # ------------------------------------------------------------ the Plant protocol

    def port(self) -> SimOutputs:
        """What the actuator may drive: the valve bank or robot."""
        return self.outputs

    def prepare(self, render: bool) -> None:
        """Render pixels or not; build the renderer now, before a controller link starts its heartbeat."""
        self.render = render
        if render:
            self.world.prepare_renderer()

    def connect(self, actuator: Actuator) -> None:
        """The virtual camera reads the virtual encoder. Behind the emulated firmware (``actuator.emulator:
        firmware``) that encoder is the MCU's count: the belt's counts less those the MCU missed while it booted
        (its emulated time is the world's, so this is exact; the link's sync would add the emulator's lag behind
        real time on a busy machine)."""
        offset: Callable[[], int] | None = getattr(getattr(actuator, "emulator", None), "boot_offset_counts", None)
        if self.cfg.actuator.emulator != "firmware" or offset is None:
            return
        cpm = float(self.cfg.actuator.counts_per_mm or self.cfg.belt.encoder_counts_per_mm)
        offset_mm = offset() / cpm
        world = self.world
        self._odometer = lambda t_ns: world.odometer_mm(t_ns) - offset_mm

    def live_source(self, stop: threading.Event, on_lost: Callable[[int], None]) -> SimFrameSource:
        """A render thread at the camera rate (live runs); an error while rendering sets ``stop``."""
        return SimFrameSource(
            self.world,
            self.clock,
            self.cfg.camera.fps,
            self.render,
            self.cfg.runtime.join_timeout_s,
            stop,
            on_lost,
            self._odometer,
        )

    def simulated(self) -> SimPlant:
        """This plant runs on simulated time (``--fast``)."""
        return self

    def score(self) -> dict[str, object]:
        return self.scoreboard.summary() if self.scoreboard is not None else {}

    def close(self) -> None:
        """Nothing to release (the actuator closes the valves)."""

    # ------------------------------------------------------------ simulated time (--fast)

    @property
    def now_ns(self) -> int:
        return self.world.now_ns

    def capture(self, t_ns: int, frame_index: int) -> Frame:
        """Expose the virtual camera at ``t_ns`` (advancing the world to it)."""
        return self.world.capture(t_ns, frame_index, self.render)

    def expose(self, t_ns: int, frame_index: int) -> Exposure:
        """Expose the virtual camera at ``t_ns`` (advancing the world to it) without drawing pixels yet."""
        return self.world.expose(t_ns, frame_index)

    def develop(self, exposure: Exposure) -> Frame:
        """The exposure's frame, drawn when this line renders pixels."""
        return self.world.develop(exposure, self.render)

    def advance_to(self, t_ns: int) -> None:
        """Run the world (belt, objects, pulses, picks) up to ``t_ns``."""
        self.world.advance_to(t_ns)
