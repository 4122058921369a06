"""The two ways of running a line: ``--fast`` (simulated clock) and live (threads).

Fast: a single thread walks the simulated time frame by frame. Each stage is
charged a processing time, modelled from the latency profile (deterministic:
the same seed and profile give the same run under any load) or, with
``runtime.charge: wall``, the time it really took; so latency costs belt
travel exactly as it would live. Frames exposed while the loop is busy replace
each other in the one-frame slot and count as dropped; only the frame the loop
takes is drawn, and the simulator's own work is never charged.

Live: a capture thread fills a latest-frame slot at the camera rate, the main
thread runs detect -> track -> plan and hands commands to the actuator (which
owns its own link thread where it has one).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sorter.capture.base import FrameSource
from sorter.clock import ChargedClock, Clock, ManualClock, ModelledClock
from sorter.entities import MATERIAL_CLASSES, Frame
from sorter.runtime.capture_prep import attach_preparer
from sorter.runtime.pipeline import CycleResult

#: Stages whose booked times the overload monitor weighs against the frame budget.
LOOP_STAGES = ("detect", "project", "track", "plan", "actuate")

if TYPE_CHECKING:
    from sorter.runtime.line import Line

log = logging.getLogger(__name__)

StatusCallback = Callable[["Line", float], None]


@dataclass
class RunResult:
    sim_duration_s: float
    wall_s: float
    interrupted: bool


def _after_cycle(line: Line, result: CycleResult, clock: Clock) -> None:
    """Submit commands, collect reports, book-keep one cycle."""
    c = line.counters
    c.frames += 1
    c.commands_late_dropped += result.late_dropped
    for d in result.decisions:
        action = str(getattr(d, "action", "unknown"))
        c.decisions[action] = c.decisions.get(action, 0) + 1
    for tr in result.retired:
        if tr.confirmed:
            c.tracks_confirmed += 1
            name = MATERIAL_CLASSES[tr.class_id]
            c.objects_by_class[name] = c.objects_by_class.get(name, 0) + 1
        else:
            c.tracks_unconfirmed += 1
    t0 = time.perf_counter_ns()
    service = line.service
    if result.commands:
        if service is None or service.actuation_enabled:
            line.actuator.submit(result.commands)
            c.on_commands(result.commands)
        else:
            c.commands_held += len(result.commands)
    line.latency.add("actuate", line.pipeline.charger.charge("actuate", time.perf_counter_ns() - t0))
    line.latency.add("total", clock.now_ns() - result.frame.t_capture_ns)
    if line.recorder is not None:
        line.recorder.add_frame(result.frame)
    if line.events is not None:
        line.events.on_cycle(result, service is None or service.actuation_enabled)
    if line.explain is not None:
        line.explain.on_cycle(result)
    _watch_overload(line)
    if service is not None:
        service.end_cycle(result)


def _watch_overload(line: Line) -> None:
    """Feed the overload monitor this cycle's stage times and drops; tell the service when the verdict changes."""
    mon = line.overload
    if mon is None:
        return
    c = line.counters
    lat = line.latency
    changed = mon.on_frame(c.frames_dropped + c.frames_dropped_slot_live, {s: lat.last_ms(s) for s in LOOP_STAGES})
    if changed:
        reason = mon.reason()
        if reason is None:
            log.info("the loop holds the camera rate again")
        else:
            log.warning("the loop cannot hold the camera rate: %s", reason)
        if line.service is not None and line.cfg.runtime.overload_degrades:
            line.service.set_degraded("overloaded", mon.cause())


def _live_cycle(line: Line, frame: Frame, clock: Clock, status: StatusCallback | None, last_status: float, t0_ns: int) -> float:
    """One frame through the pipeline and out to the actuator; shows the status when due. Returns the last status time."""
    _watch_frame_size(line, frame)
    result = line.pipeline.process(frame)
    _after_cycle(line, result, clock)
    _collect_reports(line)
    if status is not None and time.perf_counter() - last_status >= line.cfg.runtime.status_interval_s:
        status(line, (clock.now_ns() - t0_ns) / 1e9)
        return time.perf_counter()
    return last_status


def frame_size_problem(calibrated_px: tuple[int, int], frame_px: tuple[int, int]) -> str | None:
    """Why frames of ``frame_px`` (width, height) cannot be mapped with a calibration made at ``calibrated_px``."""
    if frame_px == calibrated_px:
        return None
    return (
        f"frames are {frame_px[0]}x{frame_px[1]} px but the camera calibration is for {calibrated_px[0]}x{calibrated_px[1]}: "
        "positions on the belt would be wrong; set the camera to the calibrated resolution or calibrate it again"
    )


def _watch_frame_size(line: Line, frame: Frame) -> None:
    """Raise a camera fault (degraded, logged) while the frames' size differs from the calibrated image size."""
    h, w = frame.image.shape[:2]
    if h == 0 or w == 0 or line.frame_size_px == (w, h):
        return
    line.frame_size_px = (w, h)
    problem = frame_size_problem((line.camera.width_px, line.camera.height_px), (w, h))
    if problem is not None:
        log.error("%s", problem)
    if line.service is not None:
        line.service.set_degraded("camera_size", problem)


def _collect_reports(line: Line) -> None:
    reports = line.actuator.poll_reports()
    line.counters.on_reports(reports, tolerance_mm=line.execution_tolerance_mm)
    if line.events is not None and reports:
        line.events.on_reports(reports)
    if line.recorder is not None and reports:
        line.recorder.add_reports(line.clock.now_ns(), reports)
    if line.service is not None and reports:
        line.service.on_reports(reports)


def run_fast(line: Line, duration_s: float, stop: threading.Event, status: StatusCallback | None = None) -> RunResult:
    """Run ``duration_s`` of simulated belt as fast as the machine allows.

    Each stage's time is booked on the simulated clock (modelled from the latency
    profile, or measured with ``runtime.charge: wall``); the simulator's own work
    (moving the world, exposing and drawing frames) never is. Frames exposed while
    the loop was busy replace each other in the one-frame slot and count as dropped:
    only the one the loop takes next is drawn.
    """
    plant = line.plant.simulated()
    if plant is None:
        raise RuntimeError("--fast needs the simulated line (camera.type: sim)")
    clock = line.clock
    if not isinstance(clock, ChargedClock | ModelledClock):
        raise RuntimeError("--fast needs a simulated clock (build_line(..., fast=True))")
    period_ns = round(1e9 / line.cfg.camera.fps)
    end_ns = round(duration_s * 1e9)
    next_index = 0
    latest: Any = None  # the newest exposure not taken yet
    wall0 = time.perf_counter()
    last_status = wall0

    def expose_until(t_ns: int) -> None:
        """Expose every frame due by ``t_ns``; a newer one replaces an exposure not taken yet (a dropped frame)."""
        nonlocal next_index, latest
        while next_index * period_ns <= min(t_ns, end_ns):
            if latest is not None:
                line.counters.frames_dropped += 1
            latest = plant.expose(next_index * period_ns, next_index)
            next_index += 1

    def take() -> Frame | None:
        """The frame in the slot, drawn now; when none is due, the next one (the loop idles until it)."""
        nonlocal latest
        if latest is None:
            expose_until(next_index * period_ns)
        if latest is None:
            return None
        exposure, latest = latest, None
        return plant.develop(exposure)

    expose_until(0)
    frame = take()
    while frame is not None and not stop.is_set():
        clock.begin_cycle(frame.t_capture_ns)
        if line.service is not None:
            line.service.begin_cycle()
        result = line.pipeline.process(frame)
        t_done = clock.end_cycle()  # the simulator's work below is not the line's
        expose_until(t_done)
        plant.advance_to(max(t_done, plant.now_ns))
        clock.begin_cycle(t_done)
        _after_cycle(line, result, clock)
        line.actuator.wait_idle(2.0)
        _collect_reports(line)
        t_free = clock.end_cycle()
        expose_until(t_free)
        frame = take()
        if status is not None and time.perf_counter() - last_status >= line.cfg.runtime.status_interval_s:
            last_status = time.perf_counter()
            status(line, plant.now_ns / 1e9)
    # Objects still between the camera and the ejection line have no fate yet:
    # the scoreboard counts only decided fates, so the run's tail does not distort it.
    wall = time.perf_counter() - wall0
    return RunResult(sim_duration_s=end_ns / 1e9, wall_s=wall, interrupted=stop.is_set())


STARTUP_GRACE_NS = 5_000_000_000


def _camera_trouble(line: Line, source: FrameSource, t_since_frame_ns: int, stale_ns: int) -> str | None:
    """Why the camera is not delivering (None when it is): the source's own health, else frame age."""
    health = getattr(source, "health", None)
    if health is not None:
        h = health()
        if h.state in ("reconnecting", "stale"):
            return f"camera {h.state}: {h.reason}"
    if t_since_frame_ns > stale_ns:
        return f"no fresh frame for more than {stale_ns / 1e6:.0f} ms"
    return None


def run_realtime(line: Line, duration_s: float | None, stop: threading.Event, status: StatusCallback | None = None) -> RunResult:
    """Run live: capture thread (simulated or real camera), main loop, actuator thread(s).

    A camera that stops delivering (stale, reconnecting) degrades the service and
    pauses actuation until frames flow again; a video file that ends stops the run.
    """
    source = line.plant.live_source(stop, line.counters.on_capture_lost)
    if source is None:
        raise RuntimeError("this line has no camera to run live (a replay runs with run_replay)")
    clock = line.clock
    t_start = clock.now_ns()
    wall0 = time.perf_counter()
    last_status = wall0
    service = line.service
    stale_ns = round(line.cfg.camera.stale_after_ms * 1e6)
    line.capture_prep = attach_preparer(source, line.pipeline, line.cfg.runtime.prepare_in_capture)
    source.start()
    t_last_frame = clock.now_ns()
    got_frame = False
    try:
        while not stop.is_set():
            if duration_s is not None and (clock.now_ns() - t_start) / 1e9 >= duration_s:
                break
            if service is not None:
                service.begin_cycle()
            frame = source.latest(min(0.5, stale_ns / 2e9))
            line.counters.frames_dropped_slot_live = source.frames_dropped
            if frame is None:
                if getattr(source, "ended", False):
                    log.info("the camera source ended (end of the video or image folder)")
                    break
                if service is not None:
                    # before the first frame, allow the camera its start-up time
                    limit_ns = stale_ns if got_frame else max(stale_ns, STARTUP_GRACE_NS)
                    service.set_degraded("camera", _camera_trouble(line, source, clock.now_ns() - t_last_frame, limit_ns))
                if status is not None and time.perf_counter() - last_status >= line.cfg.runtime.status_interval_s:
                    status(line, (clock.now_ns() - t_start) / 1e9)  # a stalled camera still redraws (its fault shows)
                    last_status = time.perf_counter()
                continue
            got_frame = True
            t_last_frame = clock.now_ns()
            if service is not None:
                service.set_degraded("camera", None)
            last_status = _live_cycle(line, frame, clock, status, last_status, t_start)
    finally:
        if service is not None:
            service.stopping()
        stop.set()
        source.close()
    line.counters.frames_dropped += source.frames_dropped
    line.counters.frames_dropped_slot_live = 0
    line.actuator.wait_idle(1.0)
    _collect_reports(line)
    wall = time.perf_counter() - wall0
    return RunResult(sim_duration_s=(clock.now_ns() - t_start) / 1e9, wall_s=wall, interrupted=False)


def run_replay(line: Line, source: FrameSource, stop: threading.Event, status: StatusCallback | None = None) -> RunResult:
    """Re-run the pipeline on recorded frames, deterministically: the clock is each frame's recorded stamp."""
    clock = line.clock
    if not isinstance(clock, ManualClock):
        raise RuntimeError("replay needs a ManualClock (build_line(..., replay=True))")
    wall0 = time.perf_counter()
    last_status = wall0
    t_first: int | None = None
    source.start()
    try:
        while not stop.is_set():
            frame = source.latest(0.0)
            if frame is None:
                break
            t_first = frame.t_capture_ns if t_first is None else t_first
            clock.set_ns(max(clock.now_ns(), frame.t_capture_ns))
            last_status = _live_cycle(line, frame, clock, status, last_status, t_first)
    finally:
        source.close()
    sim_s = 0.0 if t_first is None else (clock.now_ns() - t_first) / 1e9
    return RunResult(sim_duration_s=sim_s, wall_s=time.perf_counter() - wall0, interrupted=stop.is_set())


def _detector_name(line: Line) -> str:
    """The backend that actually ran (``tensorrt`` may have fallen back to ``onnxruntime``), e.g. ``onnxruntime:cpu``."""
    engine = getattr(line.pipeline.detector, "engine", None)
    name = getattr(engine, "name", None)
    return str(name) if name else line.cfg.detector.type


def _timing_fields(line: Line, fast: bool, replay: bool) -> dict[str, Any]:
    """How time was charged (profile or wall), the machine's own stage times when not charged, the overload verdict."""
    out: dict[str, Any] = {}
    if replay:
        out["charge"] = "recorded stamps"
    elif fast:
        prof = line.profile
        out["charge"] = "wall" if prof is None else "profile"
        if prof is not None:
            out["latency_profile"] = {"name": prof.name, "source": prof.source}
    else:
        out["charge"] = "live"
    measured = line.pipeline.latency_measured
    if measured is not None:
        out["latency_measured_ms"] = {k: {"p50": v["p50"], "p99": v["p99"]} for k, v in measured.summary_ms().items()}
    if line.overload is not None:
        out["overload"] = line.overload.summary()
    if line.capture_prep is not None:
        out["capture_preprocess"] = line.capture_prep.summary()
    return out


def run_line(
    line: Line,
    duration_s: float | None,
    fast: bool,
    stop: threading.Event,
    status: StatusCallback | None = None,
    replay_source: FrameSource | None = None,
) -> dict[str, Any]:
    """Run a built line (fast, live, or a replay of ``replay_source``) and return the run summary; always closes the line."""
    from sorter.runtime.accounting import build_summary

    # Everything built so far (modules, model, configs) lives as long as the process: keep it out of the
    # collector's full passes, which otherwise stop every thread (the controller link's heartbeat included)
    # for time proportional to all live objects, 100 ms and more in a process holding PyTorch.
    gc.collect()
    gc.freeze()
    try:
        if replay_source is not None:
            result = run_replay(line, replay_source, stop, status)
        elif fast:
            if duration_s is None:
                raise ValueError("--fast needs a duration")
            result = run_fast(line, duration_s, stop, status)
        else:
            result = run_realtime(line, duration_s, stop, status)
        finish = getattr(line.actuator, "finish_outstanding", None)
        if finish is not None:  # the line stops: commands still out get their outcome before they are counted
            finish()
            _collect_reports(line)
        summary = build_summary(
            counters=line.counters,
            latency=line.latency,
            score=line.score(),
            sim_duration_s=result.sim_duration_s,
            wall_s=result.wall_s,
            mode=line.cfg.line.mode,
            detector=_detector_name(line),
            actuator_stats=line.actuator.stats(),
        )
        summary.update(_timing_fields(line, fast, replay_source is not None))
    finally:
        line.close()
    if line.events is not None:
        summary["events"] = line.events_stats()  # after close: every queued event flushed
    if line.recorder_summary is not None:
        summary["recording"] = line.recorder_summary
    return summary
