"""One processing cycle: detect -> project -> track -> plan.

All stateful logic runs on the caller's (main) thread without locks. Stage
durations are measured with the performance counter and booked through a
:class:`~sorter.runtime.charging.StageCharge` (as measured live; a modelled
draw that moves the simulated clock in deterministic ``--fast`` runs), so
*decisions*, which use the injected clock, see the booked time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from sorter.clock import Clock
from sorter.config import Config
from sorter.detect.base import Detector
from sorter.entities import BeltMeasurements, Command, Detections, Frame, Track
from sorter.geometry import CameraModel, boxes_to_belt
from sorter.runtime.charging import MeasuredCharge, StageCharge
from sorter.runtime.odometry import OdometerEstimator
from sorter.runtime.stats import LatencyRecorder


class TrackerLike(Protocol):
    def update(self, meas: BeltMeasurements) -> Any: ...


class PlannerLike(Protocol):
    def plan(self, active: Any, retired: Any, s_now_mm: float, speed_mm_s: float, t_now_ns: int) -> Any: ...


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What one cycle produced."""

    frame: Frame
    detections: Detections
    active: Sequence[Track]  # the tracker's read-only TrackColumns: each Track is built when asked for
    retired: tuple[Track, ...]
    commands: tuple[Command, ...]
    late_dropped: int
    decisions: tuple[Any, ...]
    s_now_mm: float
    speed_mm_s: float
    meas_track_ids: tuple[int, ...] = ()  # the track each measurement (detection scoring >= min_score) went to


def project_detections(camera: CameraModel, frame: Frame, dets: Detections, min_score: float) -> BeltMeasurements:
    """Map pixel detections onto the belt plane (flat-object assumption)."""
    keep = dets.scores >= min_score
    boxes = dets.boxes_px[keep].astype(np.float64)
    x, y, length, width = boxes_to_belt(camera, boxes)
    return BeltMeasurements(
        t_capture_ns=frame.t_capture_ns,
        s_capture_mm=frame.s_capture_mm,
        x_mm=x,
        y_w_mm=y,
        length_mm=length,
        width_mm=width,
        scores=dets.scores[keep].astype(np.float64),
        class_ids=dets.class_ids[keep].astype(np.int32),
    )


class Pipeline:
    """detect -> project -> track -> plan, with per-stage latency accounting."""

    def __init__(
        self,
        *,
        camera: CameraModel,
        detector: Detector,
        tracker: TrackerLike,
        planner: PlannerLike,
        odometer: OdometerEstimator,
        clock: Clock,
        latency: LatencyRecorder,
        min_score: float,
    ) -> None:
        self.camera = camera
        self.detector = detector
        self.tracker = tracker
        self.planner = planner
        self.odometer = odometer
        self.clock = clock
        self.latency = latency
        self.min_score = min_score
        self.charger: StageCharge = MeasuredCharge()
        self.latency_measured: LatencyRecorder | None = None  # the machine's own stage times when they are not booked
        self.timer_ns = time.perf_counter_ns  # what measures a stage (a benchmark may measure CPU time instead)

    def process(self, frame: Frame) -> CycleResult:
        """Run one frame through the stages and return the commands to send."""
        pc = self.timer_ns
        lat, charge = self.latency, self.charger.charge
        t0 = pc()
        dets = self.detector.detect(frame)
        t1 = pc()
        if frame.prepared is not None:
            frame = replace(frame, prepared=None)  # the frame lives on (records, the live view): not its input
        lat.add("detect", charge("detect", t1 - t0))
        t1 = pc()
        meas = project_detections(self.camera, frame, dets, self.min_score)
        t2 = pc()
        lat.add("project", charge("project", t2 - t1))
        t2 = pc()
        self.odometer.add(frame.t_capture_ns, frame.s_capture_mm)
        out = self.tracker.update(meas)
        t3 = pc()
        lat.add("track", charge("track", t3 - t2))
        t3 = pc()
        t_now_ns = self.clock.now_ns()
        s_now_mm = self.odometer.s_at(t_now_ns)
        speed = self.odometer.speed_mm_s
        plan = self.planner.plan(out.active, out.retired, s_now_mm, speed, t_now_ns)
        lat.add("plan", charge("plan", pc() - t3))
        return CycleResult(
            frame=frame,
            detections=dets,
            active=out.active,
            retired=tuple(out.retired),
            commands=tuple(plan.commands),
            late_dropped=int(plan.late_dropped),
            decisions=tuple(getattr(plan, "decisions", ())),
            s_now_mm=s_now_mm,
            speed_mm_s=speed,
            meas_track_ids=tuple(getattr(out, "meas_track_ids", ())),
        )


def build_pipeline(cfg: Config, camera: CameraModel, detector: Detector, clock: Clock) -> Pipeline:
    """The processing stages of a line: the detector given, the belt-frame tracker, the planner of ``line.mode``."""
    from sorter.runtime.params import airjet_params, robot_params, tracker_params
    from sorter.schedule import AirjetPlanner, RobotPlanner
    from sorter.track import BeltTracker

    planner: PlannerLike
    if cfg.line.mode == "airjet":
        planner = AirjetPlanner(airjet_params(cfg, camera))
    else:
        planner = RobotPlanner(robot_params(cfg, camera))
    return Pipeline(
        camera=camera,
        detector=detector,
        tracker=BeltTracker(tracker_params(cfg, camera)),
        planner=planner,
        odometer=OdometerEstimator(round(cfg.belt.speed_filter_ms * 1e6), cfg.belt.nominal_speed_mm_s),
        clock=clock,
        latency=LatencyRecorder(),
        min_score=cfg.detector.min_score,
    )
