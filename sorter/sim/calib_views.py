"""The simulated line as a calibration subject: board views, the sheet on the belt, test pulses and their air.

What ``sorter calibrate ... --sim`` (and ``timing --link ... --emulator``) measures:
the virtual camera's true mount, boards and sheets rendered through it, the
sheet riding the virtual belt with the virtual encoder's counts, and the
simulator's valve bank with its true latency and jitter. The maths that turns
these into a calibration is ``sorter.calib``; which source feeds which procedure
is decided by the ``sorter calibrate`` command.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sorter.calib.bridge_rig import BeltReadout
from sorter.calib.sources import RecordedFrame
from sorter.calib.timing import ValveGeometry
from sorter.calib.timing_rig import SimHitObserver, SimPulseRig, ValveTruth
from sorter.sim.device import SimDevice
from sorter.sim.ejector import ValveBankModel
from sorter.sim.mount import sim_camera_model
from sorter.sim.world import SimWorld

if TYPE_CHECKING:
    from sorter.calib.boards import BoardSpec
    from sorter.calib.homography import SheetPlacement
    from sorter.config import Config
    from sorter.geometry import CameraModel

U8 = npt.NDArray[np.uint8]


def sim_camera(cfg: Config) -> CameraModel:
    """The simulated camera's true model (what a perfect calibration would find)."""
    return sim_camera_model(cfg)


def sim_board_views(cfg: Config, board: BoardSpec, n_views: int, seed: int = 0) -> list[tuple[str, U8]]:
    """Views of a board held in front of the simulated camera at varied positions and tilts."""
    from sorter.calib.boards import render_board
    from sorter.sim.marker_sheet import PlaneView, board_poses, render_board_view

    cam = sim_camera(cfg)
    fill = 0.45
    # texture finer than the camera's sub-pixels on the board (board spans `fill` of the width, 2x supersampling)
    ppm = max(2.0, 4.0 * fill * cam.width_px / board.pattern_size_mm()[0])
    img = render_board(board, ppm, margin_mm=max(board.square_mm, board.marker_mm) * 0.5)
    view = PlaneView(cam, supersample=2)
    poses = board_poses(cam, board.pattern_size_mm(), n_views, seed=seed, fill=fill)
    return [
        (f"sim_view_{i:02d}", render_board_view(view, img, p, noise_sigma=cfg.sim.noise_sigma, seed=seed + i))
        for i, p in enumerate(poses)
    ]


def sim_sheet_placement(cfg: Config, board: BoardSpec) -> SheetPlacement:
    """Where the simulated sheet lies: centred in the camera's view of the belt."""
    from sorter.calib.homography import SheetPlacement

    x0, x1, y0, y1 = sim_camera(cfg).view_extent_mm()
    w, h = board.pattern_size_mm()
    return SheetPlacement(x_mm=round((x0 + x1 - w) / 2.0), y_mm=round((y0 + y1 - h) / 2.0))


def sim_belt_image(cfg: Config, board: BoardSpec, placement: SheetPlacement, seed: int = 0) -> U8:
    """The simulated camera's view of the sheet lying on the belt at ``placement``."""
    from sorter.calib.boards import render_board
    from sorter.sim.marker_sheet import BeltSheetScene

    scene = BeltSheetScene(
        sim_camera(cfg),
        render_board(board, 2.0, 10.0),
        placement.x_mm,
        placement.y_mm,
        noise_sigma=cfg.sim.noise_sigma,
        seed=seed,
    )
    return scene.render(0.0)


def _empty_world(cfg: Config, counts_per_mm: float) -> SimWorld:
    """The simulated belt without objects (calibration runs on an empty belt)."""
    return SimWorld(
        cfg.sim.model_copy(update={"density_per_m2": 0.0}),
        belt_width_mm=cfg.belt.width_mm,
        nominal_speed_mm_s=cfg.belt.nominal_speed_mm_s,
        encoder_counts_per_mm=counts_per_mm,
        camera=sim_camera(cfg),
    )


def sim_speed_frames(cfg: Config, board: BoardSpec, x_mm: float, max_frames: int = 200) -> Iterator[RecordedFrame]:
    """Frames of the sheet riding the simulated belt through the view, with the virtual encoder's counts.

    The sheet starts just upstream of the view; frames come at ``camera.fps``
    from the simulated world's belt profile, until the sheet has left the view.
    """
    from sorter.calib.boards import render_board
    from sorter.sim.marker_sheet import BeltSheetScene

    cam = sim_camera(cfg)
    world = _empty_world(cfg, cfg.belt.encoder_counts_per_mm)
    _x0, _x1, y0, y1 = cam.view_extent_mm()
    _w, h = board.pattern_size_mm()
    y_start = y0 - h + 0.25 * h  # a quarter of the sheet already in view
    scene = BeltSheetScene(cam, render_board(board, 2.0, 10.0), x_mm, y_start, noise_sigma=cfg.sim.noise_sigma)
    dt_ns = round(1e9 / cfg.camera.fps)
    for i in range(max_frames):
        t_ns = i * dt_ns
        s = world.odometer_mm(t_ns)
        if y_start + s > y1 - 0.25 * h:
            break
        blur = world.speed_mm_s(t_ns) * cfg.sim.exposure_ms * 1e-3
        yield RecordedFrame(f"sim_frame_{i:03d}", scene.render(s, blur_mm=blur), t_ns, world.encoder_count(t_ns))


def sim_pulse_rig(cfg: Config, geometry: ValveGeometry) -> SimPulseRig:
    """Controller, belt and air all simulated: the belt of the simulated line, valves with its true latency and jitter."""
    world = _empty_world(cfg, cfg.belt.encoder_counts_per_mm)
    truth = ValveTruth(latency_ms=cfg.sim.valve_latency_ms, jitter_ms=cfg.sim.valve_jitter_ms)
    return SimPulseRig(world, cfg.belt.encoder_counts_per_mm, SimHitObserver(truth, geometry, seed=cfg.sim.seed))


class BankHitObserver:
    """Where the simulator's valve bank really blew (its executed pulse records), seen by a camera with some noise.

    Args:
        bank: the simulated valve bank.
        pitch_mm: valve pitch.
        x_first_mm: left edge of valve 0's air.
        sigma_mm: camera measurement noise, each axis.
        seed: noise seed.
    """

    def __init__(self, bank: ValveBankModel, pitch_mm: float, x_first_mm: float, sigma_mm: float = 0.5, seed: int = 0) -> None:
        self.bank = bank
        self.pitch_mm = pitch_mm
        self.x_first_mm = x_first_mm
        self.sigma_mm = sigma_mm
        self._rng = np.random.default_rng(seed)

    def observe(
        self, command_id: int, valve: int, s_command_mm: float, s_fired_mm: float, speed_mm_s: float
    ) -> tuple[float, float] | None:
        del s_fired_mm, speed_mm_s
        rec = next((r for r in reversed(self.bank.executed) if r.command_id == command_id), None)
        if rec is None:
            return None
        dy = s_command_mm - float(rec.s_open_actual_mm) + float(self._rng.normal(0.0, self.sigma_mm))
        x = self.x_first_mm + (valve + 0.5) * self.pitch_mm + float(self._rng.normal(0.0, self.sigma_mm))
        return dy, x


@dataclass(frozen=True)
class ValveBench:
    """The simulator's valve bank on an empty belt, for test pulses through a controller emulator.

    Attributes:
        device: the emulator's device model (the bank, in the link's counts).
        hits: where the air of each pulse hit.
        belt: the encoder readout, and the driver that moves the simulated belt past each pulse.
    """

    device: SimDevice
    hits: BankHitObserver
    belt: BeltReadout


def valve_bench(cfg: Config, counts_per_mm: float) -> ValveBench:
    """The valve bench of the simulated line, whose true latency (``sim.valve_latency_ms``) and jitter the
    timing calibration must find."""
    v = cfg.airjet.valves
    world = _empty_world(cfg, counts_per_mm)
    bank = world.add_valve_bank(v.count, v.pitch_mm, v.x_first_mm, cfg.airjet.y_eject_mm)

    def advance_to_count(count: int) -> None:
        world.advance_to(max(world.t_ns_at_odometer(count / counts_per_mm), world.now_ns))

    belt = BeltReadout(
        count_now=lambda: world.encoder_count(world.now_ns),
        speed_mm_s=lambda: world.speed_mm_s(world.now_ns),
        advance_to_count=advance_to_count,
    )
    hits = BankHitObserver(bank, v.pitch_mm, v.x_first_mm, seed=cfg.sim.seed)
    return ValveBench(SimDevice(world, bank, counts_per_mm), hits, belt)
