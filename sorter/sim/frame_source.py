"""The simulated camera as a live frame source: a render thread filling a latest-frame slot at the camera rate.

Like a real camera it does not wait for the consumer: frames it could not render
in time are lost (counted through ``on_lost``), and a frame rendered before the
previous one was taken replaces it (counted in ``frames_dropped``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from sorter.capture.slot import LatestSlot
from sorter.clock import Clock
from sorter.entities import Frame

if TYPE_CHECKING:
    from sorter.sim.world import SimWorld


class SimCaptureThread(threading.Thread):
    """Renders frames from the simulated world at the camera rate into a latest-frame slot.

    Args:
        world: the virtual line.
        clock: the line's clock (real time).
        fps: camera rate.
        render: draw pixels (False: truth only, for detectors that do not look at pixels).
        slot: where frames go.
        stop: set to stop; also set by the thread when rendering fails.
        on_lost: called with the number of frames the camera lost while a render ran late.
    """

    def __init__(
        self,
        world: SimWorld,
        clock: Clock,
        fps: float,
        render: bool,
        slot: LatestSlot[Frame],
        stop: threading.Event,
        on_lost: Callable[[int], None],
        odometer: Callable[[int], float] | None = None,
    ) -> None:
        super().__init__(name="capture-sim", daemon=True)
        self._odometer = odometer
        self._world = world
        self._clock = clock
        self._period_ns = round(1e9 / fps)
        self._render = render
        self._slot = slot
        self._stop_event = stop
        self._on_lost = on_lost
        self.error: BaseException | None = None

    def run(self) -> None:
        world, clock, period_ns = self._world, self._clock, self._period_ns
        t0 = clock.now_ns()
        k = 0
        try:
            while not self._stop_event.is_set():
                target = t0 + k * period_ns
                delay = (target - clock.now_ns()) / 1e9
                if delay > 0:
                    self._stop_event.wait(delay)
                    if self._stop_event.is_set():
                        break
                now = clock.now_ns()
                lag = (now - target) // period_ns
                if lag > 0:  # the camera does not wait: frames we could not render in time are lost
                    self._on_lost(int(lag))
                    k += int(lag)
                frame = world.capture(max(now, world.now_ns), k, self._render)
                if self._odometer is not None:  # the controller's encoder, as a real camera's odometer
                    frame = replace(frame, s_capture_mm=self._odometer(frame.t_capture_ns))
                self._slot.put(frame)
                k += 1
        except BaseException as e:  # reported by close()
            self.error = e
            self._stop_event.set()


class SimFrameSource:
    """``sorter.capture.base.FrameSource`` of the simulated camera.

    Args:
        world: the virtual line.
        clock: the line's clock.
        fps: camera rate.
        render: draw pixels.
        join_timeout_s: how long ``close`` waits for the render thread.
        stop: the run's stop event (a render error stops the run), or None for its own.
        on_lost: called with the number of frames lost to late renders.
        odometer: ``s_capture_mm`` from this (the controller's encoder) instead of the world's belt.
    """

    def __init__(
        self,
        world: SimWorld,
        clock: Clock,
        fps: float,
        render: bool,
        join_timeout_s: float,
        stop: threading.Event | None = None,
        on_lost: Callable[[int], None] | None = None,
        odometer: Callable[[int], float] | None = None,
    ) -> None:
        self.slot: LatestSlot[Frame] = LatestSlot()
        self.stop = stop if stop is not None else threading.Event()
        self.thread = SimCaptureThread(
            world, clock, fps, render, self.slot, self.stop, on_lost or (lambda _n: None), odometer
        )
        self._join_s = join_timeout_s

    def start(self) -> None:
        self.thread.start()

    def set_prepare(self, prepare: Callable[[Frame], Frame] | None) -> None:
        """Run ``prepare`` on each rendered frame in the render thread (see ``LatestSlot.prepare``)."""
        self.slot.prepare = prepare

    def latest(self, timeout_s: float) -> Frame | None:
        return self.slot.take(timeout_s=timeout_s)

    @property
    def frames_dropped(self) -> int:
        return self.slot.dropped

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=self._join_s)
        if self.thread.error is not None:
            raise self.thread.error
