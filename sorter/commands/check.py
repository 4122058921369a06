"""``sorter check``: validate a config and explain every problem."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sorter.commands.common import add_config_arguments, load_or_report

if TYPE_CHECKING:
    from sorter.config import Config
    from sorter.geometry import CameraModel

HELP = "validate a configuration and run the start-up checks (calibration, model, camera, controller, store); exit 2 on error"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--config-only", action="store_true", help="validate the configuration only; open no device")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="seconds to wait for a camera frame or a controller")


def _check_rate(cfg: Config) -> None:
    """Warn when this box's latency profile (``runtime.latency_profile``) cannot hold the camera rate."""
    from sorter.errors import ConfigError
    from sorter.runtime.latency_profile import line_profile, rate_warning

    try:
        profile = line_profile(cfg)
    except ConfigError as e:
        print(f"    WARNING: {e}")
        return
    warning = rate_warning(profile, cfg.camera.fps)
    if warning is None:
        budget = 1000.0 / cfg.camera.fps
        print(f"    latency profile '{profile.name}': {profile.p50_total_ms():.1f} ms per frame p50, within {budget:.1f} ms")
    else:
        print(f"    WARNING: {warning}")


def _print_calibration(cfg: Config) -> None:
    """Where the calibrated values come from, and every key the config overrides."""
    from sorter.runtime.calibrated import applied_of

    applied = applied_of(cfg)
    if applied is None:
        return
    if applied.calibration is not None:
        print(f"    calibration {applied.calibration.path}:")
    for key, (value, source) in applied.used.items():
        print(f"      {key}: {value}  <- {source}")
    for line in applied.overrides:
        print(f"    {line}")
    for line in applied.warnings:
        print(f"    WARNING {line}")


def _print_roi(cfg: Config, cam: CameraModel) -> None:
    """The region of each frame the detector looks at, and its share of the frame."""
    from sorter.runtime.plant import detector_roi

    roi = detector_roi(cfg, cam)
    where = roi.describe() if roi is not None else f"the whole {cfg.camera.width_px}x{cfg.camera.height_px} frame"
    if cfg.detector.type == "oracle":
        where += "; the oracle reads no pixels and ignores it"
    print(f"    detector region (detector.roi): {where}")


def main(args: argparse.Namespace) -> int:
    cfg = load_or_report(args)
    if cfg is None:
        return 2
    from sorter.plugins import all_plugins
    from sorter.runtime.plant import camera_model

    cam = camera_model(cfg)
    x0, x1, y0, y1 = cam.view_extent_mm()
    print(
        f"OK: line '{cfg.line.name}' ({cfg.line.mode}), camera {cfg.camera.type} "
        f"{cfg.camera.width_px}x{cfg.camera.height_px} @ {cfg.camera.fps:g} fps"
    )
    print(f"    camera view on the belt: x {x0:.0f}..{x1:.0f} mm, y {y0:.0f}..{y1:.0f} mm")
    speed = cfg.belt.nominal_speed_mm_s
    print(f"    each object is seen about {(y1 - y0) * cfg.camera.fps / speed:.1f} times at {speed:g} mm/s")
    if cfg.line.mode == "airjet":
        v = cfg.airjet.valves
        print(
            f"    ejection line at y = {cfg.airjet.y_eject_mm:g} mm, {v.count} valves x {v.pitch_mm:g} mm, "
            f"latency lead {v.latency_ms:g} ms"
        )
    else:
        r = cfg.robot
        print(f"    robot window y {r.window_y_start_mm:g}..{r.window_y_end_mm:g} mm, up to {r.max_picks_per_min:g} picks/min")
    print(f"    detector {cfg.detector.type}, actuator {cfg.actuator.type}, targets {', '.join(cfg.policy.targets)}")
    _print_roi(cfg, cam)
    _check_rate(cfg)


    _print_calibration(cfg)
    for ref in all_plugins():
        print(f"    plugin {ref.kind} {ref.name!r}: {ref.origin} ({ref.target})")
    if args.config_only:
        return 0
    from sorter.runtime.preflight import preflight

    print("Start-up checks:")
    results = preflight(cfg, args.timeout)
    for res in results:
        print(f"  {'PASS' if res.ok else 'FAIL'}  {res.name:12s} {res.detail}")
    failed = [res.name for res in results if not res.ok]
    if failed:
        print(f"NOT READY: {', '.join(failed)} failed; fix the above before starting the service", file=sys.stderr)
        return 2
    return 0
