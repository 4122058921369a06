"""Map the validated config onto the plain parameter objects of the pure stages."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sorter.config import Config
from sorter.entities import MATERIAL_CLASSES
from sorter.geometry import CameraModel
from sorter.schedule import AirjetParams, PolicyParams, RobotParams
from sorter.track import TrackerParams


def target_class_ids(cfg: Config) -> frozenset[int]:
    """Class ids of the sorting targets."""
    return frozenset(MATERIAL_CLASSES.index(c) for c in cfg.policy.targets)


def inner_view_y_mm(camera: CameraModel) -> tuple[float, float]:
    """Along-belt range seen across the *whole* image width (the view's inner bounds).

    With lens distortion and tilt the image's top and bottom edges are curves on
    the belt; a box touching them is truncated wherever it lies across the belt,
    so the tracker's truncation test uses the bounds that hold everywhere.
    """
    xs = np.linspace(0.0, camera.width_px - 1.0, 64)
    top = camera.pixel_to_belt(np.column_stack([xs, np.zeros_like(xs)]))
    bottom = camera.pixel_to_belt(np.column_stack([xs, np.full_like(xs, camera.height_px - 1.0)]))
    return float(top[:, 1].max()), float(bottom[:, 1].min())


def tracker_params(cfg: Config, camera: CameraModel) -> TrackerParams:
    t = cfg.tracker
    view_y_min_mm, view_y_max_mm = inner_view_y_mm(camera)
    return TrackerParams(
        gate_mm=t.gate_mm,
        min_hits=t.min_hits,
        confirm_hits=t.confirm_hits,
        confirm_travel_mm=t.confirm_travel_mm,
        confirm_single_score=t.confirm_single_score,
        confirm_needs_full_view=t.confirm_needs_full_view,
        max_unseen_ns=round(t.max_unseen_ms * 1e6),
        max_unseen_travel_mm=t.max_unseen_travel_mm,
        measurement_sigma_mm=t.measurement_sigma_mm,
        residual_process_sigma=t.residual_process_sigma,
        class_prior_votes=t.class_prior_votes,
        n_classes=len(MATERIAL_CLASSES),
        view_y_min_mm=view_y_min_mm,
        view_y_max_mm=view_y_max_mm,
    )


def policy_params(cfg: Config) -> PolicyParams:
    p = cfg.policy
    return PolicyParams(
        target_class_ids=target_class_ids(cfg),
        min_confidence=p.min_confidence,
        min_length_mm=p.min_length_mm,
        max_length_mm=p.max_length_mm,
        touching_nontarget=p.touching_nontarget,
        touching_gap_mm=p.touching_gap_mm,
    )


def valve_latencies_ms(count: int, latency_ms: float, per_valve_ms: Mapping[int, float]) -> tuple[float, ...]:
    """Delay of each valve: its own where measured, ``latency_ms`` for the others; () when none has its own."""
    if not per_valve_ms:
        return ()
    return tuple(float(per_valve_ms.get(i, latency_ms)) for i in range(count))


def airjet_params(cfg: Config, camera: CameraModel) -> AirjetParams:
    a = cfg.airjet
    v = a.valves
    _x0, _x1, _y0, view_end_y_mm = camera.view_extent_mm()
    return AirjetParams(
        y_eject_mm=a.y_eject_mm,
        valve_count=v.count,
        valve_pitch_mm=v.pitch_mm,
        valve_x_first_mm=v.x_first_mm,
        latency_ms=v.latency_ms,
        valve_latency_ms=valve_latencies_ms(v.count, v.latency_ms, v.latency_per_valve_ms),
        min_pulse_ms=v.min_pulse_ms,
        max_pulse_ms=v.max_pulse_ms,
        margin_mm=v.margin_mm,
        lateral_margin_mm=v.lateral_margin_mm,
        decide_before_mm=a.decide_before_mm,
        view_end_y_mm=view_end_y_mm,
        policy=policy_params(cfg),
    )


def robot_params(cfg: Config, camera: CameraModel) -> RobotParams:
    r = cfg.robot
    _x0, _x1, _y0, view_end_y_mm = camera.view_extent_mm()
    values = {MATERIAL_CLASSES.index(k): float(v) for k, v in r.values.items()}
    return RobotParams(
        window_y_start_mm=r.window_y_start_mm,
        window_y_end_mm=r.window_y_end_mm,
        x_min_mm=r.x_min_mm,
        x_max_mm=r.x_max_mm,
        max_picks_per_min=r.max_picks_per_min,
        values=values,
        view_end_y_mm=view_end_y_mm,
        policy=policy_params(cfg),
    )
