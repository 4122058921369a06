"""The terminal keeps faults in sight: a camera that stops delivering shows on every redraw until frames flow again,
stays counted (with when it cleared) afterwards, and the end-of-run summary counts it."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sorter.commands.run import _complete_summary
from sorter.config import load_config
from sorter.runtime.line import build_line
from sorter.runtime.loops import run_line
from sorter.runtime.service_setup import start_service
from sorter.runtime.status import RecentWarnings, status_line, status_printer
from sorter.runtime.summary_text import human_summary

CLEAR = "\x1b[H\x1b[J"


class Screen:
    """A terminal: each redraw clears it and draws one screen."""

    def __init__(self) -> None:
        self.screens: list[str] = []

    def write(self, text: str) -> None:
        assert text.startswith(CLEAR)  # a tty gets a full redraw each time
        self.screens.append(text[len(CLEAR):])

    def flush(self) -> None:
        pass


class CameraGate:
    """The simulated camera with a switch: while closed it delivers no frame (a camera that stopped)."""

    def __init__(self, world: Any) -> None:
        self.open = threading.Event()
        self.open.set()
        self.released = threading.Event()
        self._capture = world.capture
        world.capture = self.capture

    def capture(self, *args: Any, **kwargs: Any) -> Any:
        while not self.open.wait(0.05) and not self.released.is_set():
            pass
        return self._capture(*args, **kwargs)


def _until(pred: Any, timeout_s: float, what: str) -> None:
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} never happened")


def test_a_camera_fault_stays_on_screen_until_it_clears_and_is_counted_in_the_summary() -> None:
    cfg = load_config(None, ["detector.type=oracle", "sim.density_per_m2=2", "camera.fps=30", "camera.stale_after_ms=300",
                             "runtime.status_interval_s=0.2", "runtime.overload_degrades=false"])
    line = build_line(cfg, fast=False)
    gate = CameraGate(line.plant.world)  # type: ignore[attr-defined]
    service, server = start_service(line, None)
    assert server is None
    screen = Screen()
    warnings = RecentWarnings()
    logging.getLogger().addHandler(warnings)
    stop = threading.Event()
    summary: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: summary.update(run_line(line, None, False, stop,
                                                                     status_printer(True, screen, warnings))))
    runner.start()
    try:
        _until(lambda: line.counters.frames > 20 and len(screen.screens) >= 2, 60.0, "frames and a first screen")
        assert "faults: none" in screen.screens[-1]
        gate.open.clear()  # the camera stops delivering
        _until(lambda: any(f.kind == "camera" for f in service.fault_book.active()), 30.0, "the camera fault")
        n_at_fault = len(screen.screens)
        _until(lambda: len(screen.screens) >= n_at_fault + 5, 30.0, "five redraws while the camera is down")
        piped = status_line(line, 1.0)  # without a terminal (a pipe, the journal): one line, the fault in it
        assert "| FAULT camera: no fresh frame" in piped and "| faults: camera 1" in piped
        gate.open.set()
        _until(lambda: not service.fault_book.active(), 30.0, "the camera back")
        n_at_clear = len(screen.screens)
        _until(lambda: len(screen.screens) >= n_at_clear + 3, 30.0, "three redraws after the camera came back")
    finally:
        gate.released.set()
        gate.open.set()
        stop.set()
        runner.join(30.0)
        logging.getLogger().removeHandler(warnings)
    assert not runner.is_alive()
    screens = list(screen.screens)
    down = screens[n_at_fault:n_at_clear - 1]  # redraws while the fault lasted (the last may race the recovery)
    assert len(down) >= 4
    for text in down:  # every redraw keeps the fault, its reason and its start in sight
        fault = [r for r in text.splitlines() if r.startswith("FAULT camera: ")]
        assert len(fault) == 1 and "no fresh frame" in fault[0] and "(since " in fault[0]
        assert "faults since start: camera 1 (active)" in text
        assert "recent warnings:" in text and "degraded: camera" in text
    after = screens[-1]
    assert "FAULT" not in after
    assert "faults since start: camera 1 (cleared " in after
    assert "degraded: camera" in after  # the warning is still in the panel's recent warnings

    _complete_summary(summary, line, service, None, None)
    assert summary["faults"] == {"camera": 1}
    text = human_summary(summary)
    assert "faults            camera 1" in text
