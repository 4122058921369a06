"""``sorter check``: validate a config and explain every problem."""

from __future__ import annotations

import argparse

from sorter.commands.common import add_config_arguments, load_or_report

HELP = "validate a configuration (schema and physics) and explain each problem; exit 2 on error"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)


def main(args: argparse.Namespace) -> int:
    cfg = load_or_report(args)
    if cfg is None:
        return 2
    from sorter.runtime.calibration_source import camera_model_for

    cam = camera_model_for(cfg)
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
    return 0
