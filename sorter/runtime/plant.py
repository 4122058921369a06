"""The plant: the physical side of a line behind one small protocol, simulated or real.

A plant says where frames come from and what the belt odometer of each frame
reads, lends the actuator what it drives, and scores the run where it can.
``sorter.sim.plant.SimPlant`` is the simulated one; :class:`RealPlant` is a real
camera whose odometer is the controller's encoder (read through the actuator's
link) or, without one, the nominal belt speed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sorter.actuate.base import Actuator, NoPlant, PlantPort
from sorter.capture.base import FrameSource
from sorter.clock import Clock
from sorter.config import Config
from sorter.entities import Frame
from sorter.errors import ConfigError
from sorter.geometry import CameraModel

if TYPE_CHECKING:
    from sorter.actuate.base import EncoderReading
    from sorter.detect.roi import Roi

log = logging.getLogger(__name__)


class Scoreboard(Protocol):
    """How well a simulated run sorts (``sorter.sim.scoring.Scoreboard``)."""

    def summary(self) -> dict[str, Any]: ...

    def set_targets(self, target_class_ids: frozenset[int]) -> None: ...


class SimulatedTime(Protocol):
    """A plant the ``--fast`` loop can step: captures at given times, the world advanced on demand."""

    @property
    def now_ns(self) -> int: ...

    def capture(self, t_ns: int, frame_index: int) -> Frame: ...

    def expose(self, t_ns: int, frame_index: int) -> Any:
        """An exposure at ``t_ns`` whose pixels ``develop`` draws later (only for the frame the loop will use)."""
        ...

    def develop(self, exposure: Any) -> Frame: ...

    def advance_to(self, t_ns: int) -> None: ...


class Plant(Protocol):
    """The physical side of a line."""

    @property
    def odometer_source(self) -> str:
        """Where ``s_capture_mm`` comes from, in words (status page, logs)."""
        ...

    @property
    def scoreboard(self) -> Scoreboard | None:
        """The run's score keeper (simulation only)."""
        ...

    @property
    def source(self) -> FrameSource | None:
        """The camera opened at build time (a real camera), or None."""
        ...

    def port(self) -> PlantPort:
        """What the actuator may drive besides its own hardware."""
        ...

    def prepare(self, render: bool) -> None:
        """Last preparations before the controller link starts its heartbeat (heavy work done now)."""
        ...

    def connect(self, actuator: Actuator) -> None:
        """The actuator exists: a real camera's odometer reads its controller's encoder."""
        ...

    def live_source(self, stop: threading.Event, on_lost: Callable[[int], None]) -> FrameSource | None:
        """The frame source of a live run (None: the runtime attaches a recording)."""
        ...

    def simulated(self) -> SimulatedTime | None:
        """The plant's simulated time (``--fast``), or None for a real one."""
        ...

    def score(self) -> dict[str, Any]:
        """The scoreboard's summary (empty without one)."""
        ...

    def close(self) -> None:
        """Release what the plant holds."""
        ...


def camera_model(cfg: Config) -> CameraModel:
    """Camera model used to map detections onto the belt.

    The belt pose of the calibration (``camera.calibration_file``, applied by
    :func:`sorter.runtime.calibrated.apply_calibration`) wins; without one, a
    simulated camera uses its true mount (a perfect calibration) and a real
    camera is a configuration error.
    """
    from sorter.runtime.calibrated import applied_of, apply_calibration

    applied = applied_of(cfg)
    if applied is None and cfg.camera.calibration_file:
        cfg = apply_calibration(cfg)
        applied = applied_of(cfg)
    if applied is not None and applied.calibration is not None and applied.calibration.camera is not None:
        return applied.calibration.camera
    if cfg.camera.type == "sim":
        from sorter.sim.mount import sim_camera_model

        return sim_camera_model(cfg)
    raise ConfigError(
        f"camera.calibration_file is not set for camera.type = {cfg.camera.type!r}; "
        "run 'sorter calibrate intrinsics' and 'sorter calibrate belt' and set the file they write"
    )


def has_camera_model(cfg: Config) -> bool:
    """Whether the line knows where its camera looks: the simulated camera's mount, or a calibration file."""
    return cfg.camera.type == "sim" or bool(cfg.camera.calibration_file)


def detector_roi(cfg: Config, camera: CameraModel | None = None) -> Roi | None:
    """The region of each frame the detector looks at (``detector.roi``); None: the whole frame.

    ``detector.roi.px`` is used as given (checked against the camera's image size). Otherwise the belt's footprint
    (``belt.width_mm`` plus ``detector.roi.margin_mm`` on each side, the whole view along the belt) is projected
    through the camera model: in mode ``auto`` for a real camera with a calibration file and for the simulated
    camera (its true mount; with the default margin its view is all belt, so nothing is cut), always in mode
    ``belt``; mode ``full`` and ``auto`` without a camera model look at the whole frame.

    Args:
        cfg: the configuration (the calibration applied or not).
        camera: the line's camera model when the caller has it (else :func:`camera_model`).

    Raises:
        ConfigError: ``px`` leaves the image, mode ``belt`` without a camera model, or a camera that sees no belt.
    """
    from sorter.detect.roi import belt_roi, explicit_roi

    r = cfg.detector.roi
    if r.px is not None:
        return explicit_roi(r.px, cfg.camera.width_px, cfg.camera.height_px)
    if r.mode == "full" or (r.mode == "auto" and not has_camera_model(cfg)):
        return None
    if camera is None:
        try:
            camera = camera_model(cfg)
        except ConfigError as e:
            raise ConfigError(f"detector.roi.mode = belt needs the camera model: {e}; or set detector.roi.px") from None
    return belt_roi(camera, cfg.belt.width_mm, r.margin_mm)


class RealPlant:
    """A real camera over a real belt (or, for a replay, no camera at all).

    Args:
        cfg: the configuration.
        clock: the line's clock.
        open_camera: False for a replay (the runtime attaches the recording).
    """

    scoreboard: Scoreboard | None = None

    def __init__(self, cfg: Config, clock: Clock, open_camera: bool = True) -> None:
        self.cfg = cfg
        self.clock = clock
        self.open_camera = open_camera
        self.source: FrameSource | None = None
        self.odometer_source = "none"

    def port(self) -> PlantPort:
        return NoPlant()

    def prepare(self, render: bool) -> None:
        """Nothing to render ahead: a real camera delivers pixels."""
        del render

    def connect(self, actuator: Actuator) -> None:
        """Open the camera, its belt odometer read from the controller's encoder where the actuator has one."""
        if not self.open_camera:
            return
        from sorter.capture.registry import create_frame_source
        from sorter.runtime.odometry import encoder_odometer, nominal_odometer

        cfg = self.cfg
        nominal = nominal_odometer(self.clock.now_ns(), cfg.belt.nominal_speed_mm_s)
        encoder = actuator.encoder()
        if encoder is not None:
            from sorter.actuate.links import link_counts_per_mm

            odometer, what = encoder_odometer(encoder, link_counts_per_mm(cfg), nominal), "controller encoder"
            _wait_for_speed(encoder)
        else:
            odometer, what = nominal, f"nominal belt speed {cfg.belt.nominal_speed_mm_s:g} mm/s (no encoder on this actuator)"
        log.info("belt odometer of the camera: %s", what)
        self.source = create_frame_source(cfg.camera, self.clock, odometer)
        self.odometer_source = what

    def live_source(self, stop: threading.Event, on_lost: Callable[[int], None]) -> FrameSource | None:
        del stop, on_lost
        return self.source

    def simulated(self) -> SimulatedTime | None:
        return None

    def score(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        """The camera is closed by the loop that ran it."""


def _wait_for_speed(encoder: EncoderReading, timeout_s: float = 2.0) -> None:
    """The link probes the encoder periodically; a speed needs probes 0.1 s apart."""
    deadline = time.monotonic() + timeout_s
    while encoder.speed_counts_per_s() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if encoder.speed_counts_per_s() is None:
        log.warning("no belt speed from the controller's encoder yet: the first frames use the nominal speed")


def build_plant(cfg: Config, clock: Clock, target_class_ids: frozenset[int], *, fast: bool, replay: bool) -> Plant:
    """The plant of ``camera.type``: simulated for ``sim`` (except in a replay), else real.

    Raises:
        ValueError: ``--fast`` without the simulated camera.
    """
    if cfg.camera.type == "sim" and not replay:
        from sorter.sim.plant import SimPlant

        return SimPlant(cfg, clock, target_class_ids)
    if fast and not replay:
        raise ValueError("--fast needs camera.type: sim")
    return RealPlant(cfg, clock, open_camera=not replay)
