"""Start-up checks of a line before the loop runs: physics of the setup, calibration, model, camera, controller,
event store, HTTP port, flight-recorder folder.

The physics checks (ejection line, valve bank, camera rate against the camera's
view of the belt) need the camera model, read from the calibration file: they run
whenever a line's configuration is loaded (:func:`load_line_config`). The other
checks open the real thing and close it again, and say what to do when it fails.
``sorter check`` prints them; the systemd unit runs that command before starting
the service.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sorter.config import Config, config_paths, load_config
from sorter.entities import MATERIAL_CLASSES
from sorter.errors import ConfigError, SorterError
from sorter.geometry import CameraModel

log = logging.getLogger(__name__)


#: the controller's and the PLC's watchdog (firmware_bridge/PROTOCOL.md): valves close this long after the last heartbeat
CONTROLLER_WATCHDOG_MS = 100.0
#: the planner refuses a command opening less than this ahead of the odometer (``AirjetParams.safety_margin_mm``)
SAFETY_MARGIN_MM = 20.0


def physics_problems(cfg: Config, camera: CameraModel | None = None) -> list[str]:
    """Return reasons why this setup cannot work physically (empty when fine).

    Args:
        cfg: the configuration (calibration applied).
        camera: the line's camera model (default: :func:`sorter.runtime.plant.camera_model`).
    """
    if camera is None:
        from sorter.runtime.plant import camera_model

        camera = camera_model(cfg)
    problems: list[str] = []
    _x0, _x1, y0, y1 = camera.view_extent_mm()
    view_len_mm = y1 - y0
    max_speed = cfg.belt.nominal_speed_mm_s
    if cfg.camera.type == "sim":
        max_speed = max(max_speed, cfg.sim.max_speed_mm_s(cfg.belt.nominal_speed_mm_s))
    if cfg.line.mode == "airjet":
        problems += _airjet_problems(cfg, y1, max_speed)
    else:
        r = cfg.robot
        if r.window_y_start_mm <= y1:
            problems.append(
                f"robot.window_y_start_mm = {r.window_y_start_mm:g} lies inside or upstream of the camera view "
                f"(view ends at y = {y1:.0f} mm); move the robot window downstream"
            )
        if r.window_y_end_mm <= r.window_y_start_mm:
            problems.append(
                f"robot.window_y_end_mm = {r.window_y_end_mm:g} must exceed window_y_start_mm = {r.window_y_start_mm:g}"
            )
    views = view_len_mm * cfg.camera.fps / max_speed if max_speed > 0 else math.inf
    if views < 3.0:
        need_fps = 3.0 * max_speed / max(view_len_mm, 1e-9)
        problems.append(
            f"camera.fps = {cfg.camera.fps:g} is too low: at {max_speed:g} mm/s over a {view_len_mm:.0f} mm view each object "
            f"is seen only {views:.1f} times (at least 3 needed); raise camera.fps to >= {need_fps:.0f} or slow the belt"
        )
    return problems + link_problems(cfg)


def _airjet_problems(cfg: Config, view_end_mm: float, max_speed: float) -> list[str]:
    problems: list[str] = []
    a, v = cfg.airjet, cfg.airjet.valves
    if a.y_eject_mm <= view_end_mm:
        problems.append(
            f"airjet.y_eject_mm = {a.y_eject_mm:g} lies inside or upstream of the camera view "
            f"(view ends at y = {view_end_mm:.0f} mm); the ejection line must be downstream of the view, "
            f"e.g. {view_end_mm + 300:.0f}"
        )
    bank_mm = v.count * v.pitch_mm
    if v.x_first_mm < -1e-6 or v.x_first_mm + bank_mm > cfg.belt.width_mm + 1e-6:
        problems.append(
            f"airjet.valves: {v.count} valves x {v.pitch_mm:g} mm from x = {v.x_first_mm:g} mm span "
            f"{v.x_first_mm:g}..{v.x_first_mm + bank_mm:g} mm, wider than the belt (belt.width_mm = {cfg.belt.width_mm:g}); "
            "reduce airjet.valves.count or pitch_mm"
        )
    if v.min_pulse_ms > v.max_pulse_ms:
        problems.append(f"airjet.valves.min_pulse_ms = {v.min_pulse_ms:g} exceeds max_pulse_ms = {v.max_pulse_ms:g}")
    beyond = sorted(i for i in v.latency_per_valve_ms if i >= v.count)
    if beyond:
        problems.append(
            f"airjet.valves.latency_per_valve_ms names valve(s) {beyond[:5]} beyond the bank (count = {v.count}); "
            "remove them or recalibrate with 'sorter calibrate timing'"
        )
    if a.y_eject_mm > view_end_mm:
        latency_ms = max([v.latency_ms, *v.latency_per_valve_ms.values()])
        lead_mm = max_speed * latency_ms / 1000.0
        # decided when the centre leaves the view or comes within decide_before_mm of the line, whichever is first
        room_mm = max(a.y_eject_mm - view_end_mm, a.decide_before_mm)
        # the air opens this far before the centre of the smallest object the policy ejects reaches the line
        half_mm = max(cfg.policy.min_length_mm / 2.0 + v.margin_mm, v.min_pulse_ms * max_speed / 2000.0)
        frame_mm = max_speed / cfg.camera.fps  # the decision comes with the first frame after the view is left
        need_mm = lead_mm + half_mm + frame_mm + SAFETY_MARGIN_MM
        if need_mm >= room_mm:
            problems.append(
                f"airjet.valves.latency_ms: a valve delay of {latency_ms:g} ms is a lead of {lead_mm:.0f} mm "
                f"at {max_speed:g} mm/s; with the air opening {half_mm:.0f} mm ahead of even the smallest object "
                f"(policy.min_length_mm = {cfg.policy.min_length_mm:g}, margin_mm = {v.margin_mm:g}), "
                f"{frame_mm:.0f} mm of belt per frame and {SAFETY_MARGIN_MM:g} mm for the command, "
                f"a shot needs {need_mm:.0f} mm, but decisions are final only {room_mm:.0f} mm before the ejection line "
                f"(the view ends at {view_end_mm:.0f} mm, "
                f"airjet.y_eject_mm = {a.y_eject_mm:g}, airjet.decide_before_mm = {a.decide_before_mm:g}): every command "
                f"would be late; raise airjet.decide_before_mm to >= {math.ceil(need_mm + 50)}, move the ejection line "
                "downstream, or check the valve delay"
            )
    return problems


def link_problems(cfg: Config) -> list[str]:
    """A controller link whose heartbeat cannot keep the controller's watchdog fed."""
    kind = cfg.actuator.type
    if kind not in ("serial", "modbus"):
        return []
    heartbeat_ms = cfg.actuator.serial.heartbeat_ms if kind == "serial" else cfg.actuator.modbus.heartbeat_ms
    limit_ms = CONTROLLER_WATCHDOG_MS / 2.0
    if heartbeat_ms >= limit_ms:
        return [
            f"actuator.{kind}.heartbeat_ms = {heartbeat_ms:g}: the controller closes every valve {CONTROLLER_WATCHDOG_MS:g} ms "
            f"after the last heartbeat, so one late or lost heartbeat trips it; set it below {limit_ms:g} (e.g. 25)"
        ]
    return []


def roi_problems(cfg: Config) -> list[str]:
    """``detector.roi.px`` leaving the image, or ``detector.roi.mode: belt`` with no camera model to find the belt in.

    The belt region itself is computed when the line is built (``sorter.runtime.plant.detector_roi``).
    """
    from sorter.runtime.plant import has_camera_model

    r = cfg.detector.roi
    if r.px is not None:
        from sorter.detect.roi import explicit_roi

        try:
            explicit_roi(r.px, cfg.camera.width_px, cfg.camera.height_px)
        except ConfigError as e:
            return [str(e)]
    elif r.mode == "belt" and not has_camera_model(cfg):
        return [
            f"detector.roi.mode = belt needs the camera model of a calibration, but camera.type = {cfg.camera.type!r} has no "
            "camera.calibration_file; set it ('sorter calibrate belt'), or give the region as detector.roi.px: [x0, y0, x1, y1]"
        ]
    return []


def load_line_config(
    files: Sequence[str | Path] | str | Path | None = None, overrides: Iterable[str] = (), *, calibration: bool = True
) -> Config:
    """Load a line's configuration: the schema (``sorter.config.load_config``), its calibration, then the physics.

    Args:
        files: YAML files merged in order.
        overrides: ``key.path=value`` strings.
        calibration: apply ``camera.calibration_file`` (see :mod:`sorter.runtime.calibrated`). False for the
            calibration procedures, which measure the plant and may be making that file: the physics is then
            checked with the calibration where it loads, else with the simulator's true mount, else not at all.

    Raises:
        ConfigError: one line per problem (a calibration file that cannot be used included).
    """
    from sorter.runtime.calibrated import apply_calibration

    cfg = load_config(files, overrides)
    source = ", ".join(str(p) for p in config_paths(files))
    camera: CameraModel | None = None
    if calibration:
        cfg = apply_calibration(cfg)
        from sorter.runtime.plant import camera_model

        camera = camera_model(cfg)
    else:
        camera = _camera_if_any(cfg)
    problems = physics_problems(cfg, camera) if camera is not None else link_problems(cfg)
    problems += roi_problems(cfg)
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    return cfg


def _camera_if_any(cfg: Config) -> CameraModel | None:
    from sorter.runtime.plant import camera_model

    try:
        return camera_model(cfg)
    except ConfigError:
        if cfg.camera.type == "sim":
            from sorter.sim.mount import sim_camera_model

            return sim_camera_model(cfg)
        return None


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
    except SorterError as e:  # ours say what is wrong and what to do
        return CheckResult(name, False, str(e))
    except Exception as e:  # every failure is reported, none escapes
        return CheckResult(name, False, f"{type(e).__name__}: {e}")


def _calibration(cfg: Config) -> str:
    """Which calibration the line runs on: version, provenance and age of each section; overrides and old sections."""
    from sorter.runtime.calibrated import applied_of, apply_calibration

    applied = applied_of(cfg) or applied_of(apply_calibration(cfg))
    assert applied is not None
    notes = [f"WARNING {w}" for w in applied.warnings] + list(applied.overrides)
    cal = applied.calibration
    if cal is None:
        what = "simulated camera: true mount (no calibration file needed)" if cfg.camera.type == "sim" else "none"
        return "; ".join([what, *notes])
    sections = ", ".join(
        f"{k} v{i.version} ({i.provenance}, {i.age_days:.0f} days old)" for k, i in sorted(cal.sections.items())
    )
    return "; ".join([f"{cal.path}: {sections}, valid for this line", *notes])


def _model(cfg: Config) -> str:
    """Load the model, check its inputs/outputs against its metadata, run one inference on a blank frame (all in
    ``create_detector``), and check that it knows the classes the policy sorts out."""
    from sorter.detect.registry import create_detector

    t0 = time.perf_counter()
    det = create_detector(cfg, MATERIAL_CLASSES)
    try:
        name = getattr(getattr(det, "engine", None), "name", cfg.detector.type)
        spec = getattr(det, "spec", None)
    finally:
        det.close()
    loaded = f"{name} loaded in {time.perf_counter() - t0:.2f} s"
    if spec is None:
        return loaded
    unknown = [t for t in cfg.policy.targets if t not in spec.class_names]
    if unknown:
        raise ConfigError(
            f"detector.model does not detect {unknown}, which policy.targets sorts out (it knows "
            f"{', '.join(spec.class_names)}); use a model trained on them or remove them from policy.targets"
        )
    return (
        f"{loaded}; input {spec.input_w_px}x{spec.input_h_px}, outputs boxes/scores/classes x {spec.top_k}, "
        f"{spec.num_classes} classes incl. the targets; one inference on a blank frame checked"
    )


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
    want_w, want_h = cfg.camera.width_px, cfg.camera.height_px
    if (w, h) != (want_w, want_h):
        from sorter.runtime.calibrated import applied_of

        applied = applied_of(cfg)
        calibrated = applied is not None and applied.calibration is not None and applied.calibration.camera is not None
        whose = f"the calibration ({cfg.camera.calibration_file})" if calibrated else "camera.width_px/height_px"
        raise ConfigError(
            f"camera {cfg.camera.uri!r} gives {w}x{h} px frames but {whose} is for {want_w}x{want_h} px: detections "
            "would land in the wrong place on the belt; set the camera to that resolution, or calibrate at "
            f"{w}x{h} ('sorter calibrate intrinsics' and 'belt')"
        )
    return f"{cfg.camera.type} {cfg.camera.uri}: frame {w}x{h}, as calibrated"


def _controller(cfg: Config, timeout_s: float) -> str:
    from sorter.runtime.link_check import link_environment_problems

    kind = cfg.actuator.type
    if kind not in ("serial", "modbus"):
        return f"actuator {kind}: no controller link"
    missing = link_environment_problems(cfg)
    if missing:
        raise ConfigError(missing)
    emulated = cfg.actuator.emulator and cfg.camera.type == "sim"
    if emulated:
        return f"{kind}: emulated controller (simulation; its requirements are installed)"
    from sorter.actuate.links import link_max_counts_per_s, open_link

    t = open_link(cfg.actuator, arm=False, max_counts_per_s=link_max_counts_per_s(cfg))
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
