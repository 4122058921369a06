"""The two ways of running a line: ``--fast`` (simulated clock) and live (threads).

Fast: a single thread walks the simulated time frame by frame. Each cycle's
*real* processing time is charged to the simulated clock, so latency costs
belt travel exactly as it would live; frames captured while the loop is busy
replace each other in the one-frame slot and count as dropped. With a
processing time below the frame period the run is deterministic from the seed.

Live: a capture thread fills a latest-frame slot at the camera rate, the main
thread runs detect -> track -> plan and hands commands to the actuator (which
owns its own link thread where it has one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sorter.clock import ChargedClock, Clock
from sorter.entities import Frame
from sorter.runtime.pipeline import CycleResult
from sorter.runtime.slot import LatestSlot

if TYPE_CHECKING:
    from sorter.runtime.line import Line

log = logging.getLogger(__name__)

StatusCallback = Callable[["Line", float], None]


@dataclass
class RunResult:
    sim_duration_s: float
    wall_s: float
    interrupted: bool


def _after_cycle(line: Line, result: CycleResult, t_start_ns: int, clock: Clock) -> None:
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
        else:
            c.tracks_unconfirmed += 1
    t0 = time.perf_counter_ns()
    if result.commands:
        line.actuator.submit(result.commands)
        c.on_commands(result.commands)
    line.latency.add("actuate", time.perf_counter_ns() - t0)
    line.latency.add("total", clock.now_ns() - result.frame.t_capture_ns)
    del t_start_ns


def _collect_reports(line: Line) -> None:
    line.counters.on_reports(line.actuator.poll_reports(), tolerance_mm=line.execution_tolerance_mm)


def run_fast(line: Line, duration_s: float, stop: threading.Event, status: StatusCallback | None = None) -> RunResult:
    """Run ``duration_s`` of simulated belt as fast as the machine allows."""
    world = line.world
    if world is None:
        raise RuntimeError("--fast needs the simulated line (camera.type: sim)")
    clock = line.clock
    if not isinstance(clock, ChargedClock):
        raise RuntimeError("--fast needs a ChargedClock")
    period_ns = round(1e9 / line.cfg.camera.fps)
    end_ns = round(duration_s * 1e9)
    render = line.render_frames
    next_index = 0
    pending: Frame | None = None
    wall0 = time.perf_counter()
    last_status = wall0

    def capture_until(t_ns: int) -> None:
        nonlocal next_index, pending
        while next_index * period_ns <= min(t_ns, end_ns):
            frame = world.capture(next_index * period_ns, next_index, render)
            if pending is not None:
                line.counters.frames_dropped += 1
            pending = frame
            next_index += 1

    capture_until(0)
    while pending is not None and not stop.is_set():
        frame, pending = pending, None
        clock.begin_cycle(frame.t_capture_ns)
        result = line.pipeline.process(frame)
        t_done = clock.now_ns()
        capture_until(t_done)
        world.advance_to(max(t_done, world.now_ns))
        _after_cycle(line, result, frame.t_capture_ns, clock)
        line.actuator.wait_idle(2.0)
        _collect_reports(line)
        t_free = clock.end_cycle()
        if pending is None and next_index * period_ns <= end_ns:
            capture_until(max(t_free, next_index * period_ns))
        if status is not None and time.perf_counter() - last_status >= line.cfg.runtime.status_interval_s:
            last_status = time.perf_counter()
            status(line, world.now_ns / 1e9)
    # Objects still between the camera and the ejection line have no fate yet:
    # the scoreboard counts only decided fates, so the run's tail does not distort it.
    wall = time.perf_counter() - wall0
    return RunResult(sim_duration_s=end_ns / 1e9, wall_s=wall, interrupted=stop.is_set())


class SimCaptureThread(threading.Thread):
    """Renders frames from the simulated world at the camera rate into a latest-frame slot."""

    def __init__(self, line: Line, slot: LatestSlot[Frame], stop: threading.Event) -> None:
        super().__init__(name="capture-sim", daemon=True)
        self._line = line
        self._slot = slot
        self._stop_event = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        line = self._line
        world = line.world
        assert world is not None
        period_ns = round(1e9 / line.cfg.camera.fps)
        t0 = line.clock.now_ns()
        k = 0
        try:
            while not self._stop_event.is_set():
                target = t0 + k * period_ns
                delay = (target - line.clock.now_ns()) / 1e9
                if delay > 0:
                    self._stop_event.wait(delay)
                    if self._stop_event.is_set():
                        break
                now = line.clock.now_ns()
                lag = (now - target) // period_ns
                if lag > 0:  # the camera does not wait: frames we could not render in time are lost
                    line.counters.frames_dropped += int(lag)
                    line.counters.frames_dropped_capture += int(lag)
                    k += int(lag)
                frame = world.capture(max(now, world.now_ns), k, line.render_frames)
                self._slot.put(frame)
                k += 1
        except BaseException as e:  # reported by the main loop
            self.error = e
            self._stop_event.set()


def run_realtime(line: Line, duration_s: float | None, stop: threading.Event, status: StatusCallback | None = None) -> RunResult:
    """Run live: capture thread, main loop, actuator thread(s)."""
    if line.world is None:
        raise RuntimeError("live capture from real cameras is configured through camera.type; only 'sim' is wired here")
    slot: LatestSlot[Frame] = LatestSlot()
    cap = SimCaptureThread(line, slot, stop)
    clock = line.clock
    t_start = clock.now_ns()
    wall0 = time.perf_counter()
    last_status = wall0
    cap.start()
    try:
        while not stop.is_set():
            if duration_s is not None and (clock.now_ns() - t_start) / 1e9 >= duration_s:
                break
            frame = slot.take(timeout_s=0.5)
            if frame is None:
                continue
            result = line.pipeline.process(frame)
            _after_cycle(line, result, frame.t_capture_ns, clock)
            _collect_reports(line)
            if status is not None and time.perf_counter() - last_status >= line.cfg.runtime.status_interval_s:
                last_status = time.perf_counter()
                status(line, (clock.now_ns() - t_start) / 1e9)
    finally:
        stop.set()
        cap.join(timeout=line.cfg.runtime.join_timeout_s)
    if cap.error is not None:
        raise cap.error
    line.counters.frames_dropped += slot.dropped
    line.actuator.wait_idle(1.0)
    _collect_reports(line)
    wall = time.perf_counter() - wall0
    return RunResult(sim_duration_s=(clock.now_ns() - t_start) / 1e9, wall_s=wall, interrupted=False)


def run_line(
    line: Line, duration_s: float | None, fast: bool, stop: threading.Event, status: StatusCallback | None = None
) -> dict[str, Any]:
    """Run a built line (fast or live) and return the run summary; always closes the line."""
    from sorter.runtime.accounting import build_summary

    try:
        if fast:
            if duration_s is None:
                raise ValueError("--fast needs a duration")
            result = run_fast(line, duration_s, stop, status)
        else:
            result = run_realtime(line, duration_s, stop, status)
        return build_summary(
            counters=line.counters,
            latency=line.latency,
            score=line.score(),
            sim_duration_s=result.sim_duration_s,
            wall_s=result.wall_s,
            mode=line.cfg.line.mode,
            actuator_stats=line.actuator.stats(),
        )
    finally:
        line.close()
