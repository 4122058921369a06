"""Start-up checks of a line before the loop runs: calibration, model, camera, controller, event store, HTTP port,
flight-recorder folder.

Each check opens the real thing and closes it again, and says what to do when
it fails. ``sorter check`` prints them; the systemd unit runs that command
before starting the service.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from sorter.config import Config
from sorter.entities import MATERIAL_CLASSES

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One preflight check: ``ok`` False means the service must not start."""

    name: str
    ok: bool
    detail: str


def _run(name: str, fn: Callable[[], str]) -> CheckResult:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            detail = fn()
        extra = "; ".join(f"WARNING {w.message}" for w in caught)
        return CheckResult(name, True, f"{detail}{'; ' + extra if extra else ''}")
    except Exception as e:  # every failure is reported, none escapes
        return CheckResult(name, False, f"{type(e).__name__}: {e}")


def _calibration(cfg: Config) -> str:
    from sorter.runtime.calibration_source import camera_model_for

    cam = camera_model_for(cfg)
    if cfg.camera.calibration_file:
        return f"{cfg.camera.calibration_file}: fx {cam.fx:.1f} px, valid"
    return "simulated camera: true mount (no calibration file needed)"


def _model(cfg: Config) -> str:
    from sorter.detect.registry import create_detector

    t0 = time.perf_counter()
    det = create_detector(cfg, MATERIAL_CLASSES)
    try:
        name = getattr(getattr(det, "engine", None), "name", cfg.detector.type)
    finally:
        det.close()
    return f"{name} loaded in {time.perf_counter() - t0:.2f} s"


def _camera(cfg: Config, timeout_s: float) -> str:
    if cfg.camera.type == "sim":
        return "simulated camera"
    from sorter.capture.registry import create_frame_source
    from sorter.clock import MonotonicClock

    src = create_frame_source(cfg.camera, MonotonicClock(), lambda _t: 0.0)
    src.start()
    try:
        frame = src.latest(timeout_s)
        if frame is None:
            raise TimeoutError(
                f"camera {cfg.camera.uri!r} opened but gave no frame within {timeout_s:g} s; check cable, trigger, exposure"
            )
        h, w = frame.image.shape[:2]
    finally:
        src.close()
    return f"{cfg.camera.type} {cfg.camera.uri}: frame {w}x{h}"


def _controller(cfg: Config, timeout_s: float) -> str:
    kind = cfg.actuator.type
    if kind not in ("serial", "modbus"):
        return f"actuator {kind}: no controller link"
    if cfg.actuator.emulator:
        return f"{kind}: emulated controller (simulation)"
    from sorter.commands.hw import open_target

    t = open_target(cfg, False, False)
    try:
        if not t.link.wait_ready(timeout_s):
            raise TimeoutError(
                f"no answer from the {t.where} within {timeout_s:g} s; check the cable/network and actuator settings"
            )
        return f"{t.where} answers"
    finally:
        t.close()


def _event_store(cfg: Config) -> str:
    if cfg.analytics.store is None:
        return "no event store configured (analytics.store)"
    from sorter.analytics.store import check_free_space, describe_store, open_store

    free_mb = check_free_space(cfg.analytics.store, cfg.analytics.min_free_mb)
    store = open_store(cfg.analytics.store, line=cfg.line.name)
    try:
        n = store.count()
    finally:
        store.close()
    free = f", {free_mb:.0f} MB free" if free_mb is not None else ""
    return f"{describe_store(cfg.analytics.store)}: writable, {n} events of line {cfg.line.name!r}{free}"


def _http_port(cfg: Config) -> str:
    """Bind the port the way the server does (address reuse): connections of a previous run in TIME_WAIT do not fail it."""
    port = cfg.service.http_port
    if port is None:
        return "no HTTP endpoint (service.http_port)"
    from sorter.runtime.web.listen import bind_listener
    from sorter.runtime.web.settings import web_settings

    settings = web_settings(cfg)  # a view that must be guarded but has no token fails here, not at start-up
    bind_listener(cfg.service.http_host, port, listen=False).close()
    view = "page needs the token" if settings.view_token else "page open to anyone who can reach the port"
    return f"{cfg.service.http_host}:{port} free ({view})"


def _flight_recorder(cfg: Config) -> str:
    folder = cfg.service.flight_recorder_dir
    if folder is None:
        return "no flight recorder (service.flight_recorder_dir)"
    from sorter.runtime.flight_recorder import FlightRecorder

    FlightRecorder(folder, cfg.service.flight_recorder_cycles)  # creates the folder and tries a write
    return f"{folder}: writable"


def preflight(cfg: Config, timeout_s: float = 5.0) -> list[CheckResult]:
    """Run every check; the service may start only if all are ``ok``."""
    return [
        _run("calibration", lambda: _calibration(cfg)),
        _run("model", lambda: _model(cfg)),
        _run("camera", lambda: _camera(cfg, timeout_s)),
        _run("controller", lambda: _controller(cfg, timeout_s)),
        _run("event store", lambda: _event_store(cfg)),
        _run("http port", lambda: _http_port(cfg)),
        _run("flight recorder", lambda: _flight_recorder(cfg)),
    ]
