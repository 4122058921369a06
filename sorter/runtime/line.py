"""Wiring: a line is a plant (simulated or real) plus the stages, built from its configuration.

This is the only place that imports every stage (DESIGN.md section 2). How a simulated
world is made is the simulated plant's business (``sorter.sim.plant``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sorter.actuate.base import Actuator, execution_tolerance_mm
from sorter.actuate.registry import create_actuator
from sorter.capture.base import FrameSource
from sorter.clock import ChargedClock, Clock, ManualClock, ModelledClock, MonotonicClock
from sorter.config import Config
from sorter.detect.base import Detector
from sorter.detect.registry import create_detector
from sorter.entities import MATERIAL_CLASSES, CommandReport
from sorter.errors import ConfigError
from sorter.geometry import CameraModel
from sorter.runtime.accounting import RunCounters
from sorter.runtime.latency_profile import LatencyProfile, StageSampler, line_profile
from sorter.runtime.overload import OverloadMonitor
from sorter.runtime.params import target_class_ids
from sorter.runtime.pipeline import CycleResult, Pipeline, build_pipeline
from sorter.runtime.plant import Plant, Scoreboard, build_plant, camera_model, detector_roi
from sorter.runtime.stats import LatencyRecorder

if TYPE_CHECKING:
    from sorter.capture.recording import RecordingWriter
    from sorter.runtime.capture_prep import CapturePreparer
    from sorter.runtime.events import EventRecorder
    from sorter.runtime.explain_recorder import ExplainRecorder


class RunningService(Protocol):
    """What the loops tell the service around a line (``sorter.runtime.service.LineService``)."""

    @property
    def actuation_enabled(self) -> bool: ...

    def begin_cycle(self) -> None: ...

    def end_cycle(self, result: CycleResult) -> None: ...

    def on_reports(self, reports: list[CommandReport]) -> None: ...

    def set_degraded(self, kind: str, reason: str | None) -> None: ...

    def stopping(self) -> None: ...


@dataclass
class Line:
    """Everything a running line is made of."""

    cfg: Config
    clock: Clock
    camera: CameraModel
    detector: Detector
    pipeline: Pipeline
    actuator: Actuator
    plant: Plant
    counters: RunCounters
    render_frames: bool
    execution_tolerance_mm: float
    service: RunningService | None = None  # when run as a service (HTTP, pause, reload)
    events: EventRecorder | None = None  # when analytics.store is set
    recorder: RecordingWriter | None = None  # for `sorter record`
    recorder_summary: dict[str, object] | None = None
    frame_size_px: tuple[int, int] | None = None  # (width, height) of the last frame with pixels, checked once per change
    profile: LatencyProfile | None = None  # the modelled stage times of a deterministic --fast run
    overload: OverloadMonitor | None = None
    explain: ExplainRecorder | None = None  # for `sorter run --explain` (simulated lines)
    capture_prep: CapturePreparer | None = None  # a live run's preprocessing in the capture thread

    @property
    def latency(self) -> LatencyRecorder:
        return self.pipeline.latency

    @property
    def scoreboard(self) -> Scoreboard | None:
        """The simulated plant's scoreboard (None on a real line)."""
        return self.plant.scoreboard

    @property
    def source(self) -> FrameSource | None:
        """A real camera opened at build time (None for the simulated camera, which starts per run, and replays)."""
        return self.plant.source

    @property
    def odometer_source(self) -> str:
        """Where ``s_capture_mm`` comes from: simulated encoder, controller encoder, nominal speed, none."""
        return self.plant.odometer_source

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
                try:
                    self.detector.close()
                finally:
                    self.plant.close()

    def events_stats(self) -> dict[str, int]:
        """Event-store counters (empty without a store)."""
        return {} if self.events is None else dict(self.events.stats())

    def score(self) -> dict[str, Any]:
        return self.plant.score()


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
    if cfg.camera.type != "sim":  # the camera's own module, opened after the link is up
        from sorter.capture.registry import SOURCES
        from sorter.plugins import load, resolve

        load(resolve("camera", cfg.camera.type, SOURCES, "camera.type"))


def replay_config(cfg: Config) -> Config:
    """A replay never actuates (dry run) and needs a detector that looks at pixels."""
    if cfg.detector.type == "oracle":
        raise ValueError(
            "replay needs a detector that looks at pixels (detector.type onnxruntime, tensorrt or torch), not oracle"
        )
    return cfg.model_copy(update={"actuator": cfg.actuator.model_copy(update={"type": "dry_run"})})


def _calibrated(cfg: Config) -> tuple[Config, Config]:
    """The line's config with the calibration's values applied, and the simulated world's truth.

    Applying is a no-op when loading applied it already. The simulated world keeps the config's encoder as its
    truth, so that a calibration measuring it wrongly shows as a wrong calibration. Socat, the serial device and
    its permissions are refused here, before anything is opened.
    """
    from sorter.runtime.calibrated import apply_calibration
    from sorter.runtime.link_check import link_environment_problems

    applied = apply_calibration(cfg)
    missing = link_environment_problems(applied)
    if missing:
        raise ConfigError(missing)
    return applied, applied.model_copy(update={"belt": cfg.belt})


def _line_clock(cfg: Config, *, fast: bool, replay: bool) -> tuple[Clock, LatencyProfile | None]:
    """The line's clock, and the latency profile it is charged from (``--fast`` with ``runtime.charge: profile``)."""
    if replay:
        return ManualClock(), None
    if not fast:
        return MonotonicClock(), None
    if cfg.runtime.charge == "profile":
        return ModelledClock(), line_profile(cfg)
    return ChargedClock(), None


def _charge_from_profile(pipeline: Pipeline, profile: LatencyProfile | None, clock: Clock, seed: int) -> None:
    """On a modelled clock, charge each stage a time drawn from ``profile`` (seeded), keeping what it really took."""
    if profile is None or not isinstance(clock, ModelledClock):
        return
    from sorter.runtime.charging import ModelledCharge

    pipeline.latency_measured = LatencyRecorder()
    pipeline.charger = ModelledCharge(StageSampler(profile, seed), clock, pipeline.latency_measured)


def _overload_monitor(cfg: Config) -> OverloadMonitor:
    """Judges the loop against the camera rate (``runtime.overload_*``)."""
    r = cfg.runtime
    return OverloadMonitor(fps=cfg.camera.fps, window_s=r.overload_window_s, drop_share_limit=r.overload_drop_share)


def _warm_tracker(cfg: Config, camera: CameraModel) -> None:
    """Compile the tracker's kernels (or load them from numba's cache) before the simulated world starts.

    The first start on a machine compiles them, for seconds: done inside the plant's time, it would let the belt
    run unseen. The line's own tracker, built later, finds them ready.
    """
    from sorter.runtime.params import tracker_params
    from sorter.track import BeltTracker

    BeltTracker(tracker_params(cfg, camera))


def build_line(cfg: Config, *, fast: bool, replay: bool = False) -> Line:
    """Build a line: the plant, the detector, tracker and planner, the actuator, the event recorder.

    Args:
        cfg: validated configuration.
        fast: use simulated time (``--fast``): stages charged the modelled times of ``runtime.latency_profile``
            (``runtime.charge: profile``, deterministic) or their real durations (``runtime.charge: wall``).
        replay: for ``sorter replay``: a manual clock moved to each recorded frame's stamp, no simulated world,
            no camera opened (the runtime attaches the recording), and a dry-run actuator whatever the config says.
    """
    cfg, truth = _calibrated(replay_config(cfg) if replay else cfg)
    _warm_tracker(cfg, camera_model(cfg))  # before any clock or world starts
    clock, profile = _line_clock(cfg, fast=fast, replay=replay)
    camera = camera_model(cfg)
    plant = build_plant(truth, clock, target_class_ids(cfg), fast=fast, replay=replay)
    detector = create_detector(cfg, MATERIAL_CLASSES, detector_roi(cfg, camera))
    pipeline = build_pipeline(cfg, camera, detector, clock)
    _charge_from_profile(pipeline, profile, clock, cfg.sim.seed)
    render = bool(detector.needs_pixels or (not fast and cfg.sim.render))
    plant.prepare(render)  # before the controller link starts its heartbeat
    _preload(cfg)
    actuator: Actuator | None = None
    try:
        actuator = create_actuator(cfg, clock, plant.port())
        plant.connect(actuator)
        from sorter.runtime.events import create_event_recorder

        events = create_event_recorder(cfg.analytics, clock, line=cfg.line.name)
    except BaseException:
        if actuator is not None:
            actuator.close()
        detector.close()
        raise
    tolerance_mm = execution_tolerance_mm(cfg.belt.encoder_counts_per_mm)
    overload = None if replay else _overload_monitor(cfg)  # a replay has no camera rate to hold
    return Line(
        cfg, clock, camera, detector, pipeline, actuator, plant, RunCounters(), render, tolerance_mm,
        events=events, profile=profile, overload=overload,
    )
