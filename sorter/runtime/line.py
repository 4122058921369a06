"""Wiring: build every stage of a line from its configuration.

This is the only place that imports every stage (DESIGN.md section 2).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sorter.actuate.base import Actuator
from sorter.clock import ChargedClock, Clock, ManualClock, MonotonicClock
from sorter.config import Config
from sorter.detect.base import Detector
from sorter.detect.registry import create_detector
from sorter.entities import MATERIAL_CLASSES
from sorter.geometry import CameraModel
from sorter.runtime.accounting import RunCounters
from sorter.runtime.calibration_source import camera_model_for, sim_camera_model
from sorter.runtime.odometry import OdometerEstimator
from sorter.runtime.params import airjet_params, robot_params, target_class_ids, tracker_params
from sorter.runtime.pipeline import Pipeline
from sorter.runtime.stats import LatencyRecorder

log = logging.getLogger(__name__)


@dataclass
class Line:
    """Everything a running line is made of."""

    cfg: Config
    clock: Clock
    camera: CameraModel
    detector: Detector
    pipeline: Pipeline
    actuator: Actuator
    latency: LatencyRecorder
    counters: RunCounters
    world: Any  # sorter.sim.world.SimWorld when camera.type is sim
    scoreboard: Any
    render_frames: bool
    execution_tolerance_mm: float
    source: Any = None  # sorter.capture.base.FrameSource of a real camera (None for the simulated camera)
    service: Any = None  # sorter.runtime.service.LineService when run as a service (HTTP, pause, reload)
    events: Any = None  # sorter.runtime.events.EventRecorder when analytics.store is set
    recorder: Any = None  # sorter.capture.recording.RecordingWriter for `sorter record`
    odometer_source: str = "none"  # where s_capture_mm comes from: simulated encoder, controller encoder, nominal speed

    def close(self) -> None:
        """Close the actuator (valves shut), the event store (queued events flushed) and the detector."""
        try:
            self.actuator.close()
        finally:
            try:
                if self.events is not None:
                    self.events.close(self.cfg.runtime.join_timeout_s)
                if self.recorder is not None:
                    self.recorder_summary = self.recorder.close()
            finally:
                self.detector.close()

    recorder_summary: dict[str, Any] | None = None

    def events_stats(self) -> dict[str, int]:
        """Event-store counters (empty without a store)."""
        return {} if self.events is None else dict(self.events.stats())

    def score(self) -> dict[str, Any]:
        if self.scoreboard is None:
            return {}
        s: dict[str, Any] = self.scoreboard.summary()
        return s


def _preload(cfg: Config) -> None:
    """Import now what the loop and the service will import on first use.

    A controller link starts its heartbeat as soon as the actuator is built, and a first
    import of OpenCV or the renderer holds the interpreter for tens of milliseconds: done
    after the link is up, a few of them in a row starve the heartbeat past the PLC's 100 ms
    watchdog (seen as a watchdog trip at every start of the Modbus line).
    """
    import importlib

    names = ["cv2", "sorter.runtime.http_api", "sorter.runtime.overlay", "sorter.runtime.loops"]
    names.append("sorter.sim.render" if cfg.camera.type == "sim" else "sorter.capture.registry")
    for name in names:
        importlib.import_module(name)


def _build_actuator(cfg: Config, clock: Clock, world: Any, device: Any) -> Actuator:
    kind = cfg.actuator.type
    _preload(cfg)
    if kind == "virtual":
        if world is None:
            raise ValueError("actuator.type 'virtual' needs the simulated line (camera.type: sim)")
        from sorter.actuate.virtual import VirtualActuator

        return VirtualActuator(world, device, clock)
    if kind == "dry_run":
        from sorter.actuate.dry_run import DryRunActuator

        return DryRunActuator(clock)
    if kind in ("serial", "modbus"):
        from sorter.actuate.bridge import create_bridge_actuator

        act: Actuator = create_bridge_actuator(cfg, clock, world, device)
        return act
    if kind == "host_timed":
        from sorter.actuate.host_timed import create_host_timed_actuator

        act2: Actuator = create_host_timed_actuator(cfg, clock, world, device)
        return act2
    raise ValueError(f"actuator.type {kind!r} unknown")


def _real_camera(cfg: Config, clock: Clock, actuator: Actuator) -> tuple[Any, str]:
    """The camera's frame source, with the belt odometer read from the controller's encoder where the link has it."""
    from sorter.capture.registry import create_frame_source
    from sorter.runtime.odometry import encoder_odometer, nominal_odometer

    nominal = nominal_odometer(clock.now_ns(), cfg.belt.nominal_speed_mm_s)
    sync = getattr(getattr(actuator, "link", None), "sync", None)
    if sync is not None:
        from sorter.actuate.bridge import link_counts_per_mm

        odometer, what = encoder_odometer(sync, link_counts_per_mm(cfg), nominal), "controller encoder"
        deadline = time.monotonic() + 2.0  # the link probes the encoder periodically; a speed needs probes 0.1 s apart
        while sync.speed_counts_per_s() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if sync.speed_counts_per_s() is None:
            log.warning("no belt speed from the controller's encoder yet: the first frames use the nominal speed")
    else:
        odometer, what = nominal, f"nominal belt speed {cfg.belt.nominal_speed_mm_s:g} mm/s (no encoder on this actuator)"
    log.info("belt odometer of the camera: %s", what)
    return create_frame_source(cfg.camera, clock, odometer), what


def build_line(cfg: Config, *, fast: bool, replay: bool = False) -> Line:
    """Build a line: simulated world (if any), detector, tracker, planner, actuator.

    Args:
        cfg: validated configuration.
        fast: use the simulated, processing-time-charged clock (``--fast``).
        replay: for ``sorter replay``: a manual clock moved to each recorded frame's stamp, no simulated world,
            no camera opened (the runtime attaches the recording), and a dry-run actuator whatever the config says.
    """
    from sorter.track import BeltTracker

    if replay:
        if cfg.detector.type == "oracle":
            raise ValueError(
                "replay needs a detector that looks at pixels (detector.type onnxruntime, tensorrt or torch), not oracle"
            )
        cfg = cfg.model_copy(update={"actuator": cfg.actuator.model_copy(update={"type": "dry_run"})})
    clock: Clock = ManualClock() if replay else ChargedClock() if fast else MonotonicClock()
    camera = camera_model_for(cfg)
    world: Any = None
    device: Any = None
    scoreboard: Any = None
    targets = target_class_ids(cfg)
    if cfg.camera.type == "sim" and not replay:
        from sorter.sim.world import SimWorld

        world = SimWorld(
            cfg.sim,
            belt_width_mm=cfg.belt.width_mm,
            nominal_speed_mm_s=cfg.belt.nominal_speed_mm_s,
            encoder_counts_per_mm=cfg.belt.encoder_counts_per_mm,
            camera=sim_camera_model(cfg),
            class_names=MATERIAL_CLASSES,
            t0_ns=clock.now_ns(),
        )
        if cfg.line.mode == "airjet":
            v = cfg.airjet.valves
            device = world.add_valve_bank(
                valve_count=v.count, valve_pitch_mm=v.pitch_mm, valve_x_first_mm=v.x_first_mm, y_eject_mm=cfg.airjet.y_eject_mm
            )
        else:
            r = cfg.robot
            device = world.add_robot(
                window_y_start_mm=r.window_y_start_mm,
                window_y_end_mm=r.window_y_end_mm,
                x_min_mm=r.x_min_mm,
                x_max_mm=r.x_max_mm,
            )
        scoreboard = world.scoreboard(target_class_ids=targets)
    elif fast and not replay:
        raise ValueError("--fast needs camera.type: sim")
    detector = create_detector(cfg, MATERIAL_CLASSES)
    tracker = BeltTracker(tracker_params(cfg, camera))
    planner: Any
    if cfg.line.mode == "airjet":
        from sorter.schedule import AirjetPlanner

        planner = AirjetPlanner(airjet_params(cfg, camera))
    else:
        from sorter.schedule import RobotPlanner

        planner = RobotPlanner(robot_params(cfg, camera))
    latency = LatencyRecorder()
    odometer = OdometerEstimator(window_ns=round(cfg.belt.speed_filter_ms * 1e6), nominal_speed_mm_s=cfg.belt.nominal_speed_mm_s)
    pipeline = Pipeline(
        camera=camera,
        detector=detector,
        tracker=tracker,
        planner=planner,
        odometer=odometer,
        clock=clock,
        latency=latency,
        min_score=cfg.detector.min_score,
    )
    render = bool(detector.needs_pixels or (not fast and cfg.sim.render))
    if world is not None and render:
        world.prepare_renderer()  # before the controller link starts its heartbeat
    actuator = _build_actuator(cfg, clock, world, device)
    source: Any = None
    odometer_source = "simulated encoder" if world is not None else "none"
    try:
        if cfg.camera.type != "sim" and not replay:
            source, odometer_source = _real_camera(cfg, clock, actuator)
        from sorter.runtime.events import create_event_recorder

        events = create_event_recorder(cfg.analytics, clock, line=cfg.line.name)
    except BaseException:
        actuator.close()
        detector.close()
        raise
    return Line(
        cfg=cfg,
        clock=clock,
        camera=camera,
        detector=detector,
        pipeline=pipeline,
        actuator=actuator,
        latency=latency,
        counters=RunCounters(),
        world=world,
        scoreboard=scoreboard,
        render_frames=render,
        execution_tolerance_mm=max(1.0, 2.0 / cfg.belt.encoder_counts_per_mm),
        events=events,
        source=source,
        odometer_source=odometer_source,
    )
