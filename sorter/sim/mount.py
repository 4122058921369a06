"""The virtual camera's true mount: what a perfect calibration of the simulated line would measure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sorter.geometry import CameraModel

if TYPE_CHECKING:
    from sorter.config import Config


def sim_camera_model(cfg: Config) -> CameraModel:
    """The virtual camera's true model, from ``sim.mount`` and ``camera`` size."""
    m = cfg.sim.mount
    centre_x = m.centre_x_mm if m.centre_x_mm is not None else cfg.belt.width_mm / 2.0
    return CameraModel.looking_down(
        width_px=cfg.camera.width_px,
        height_px=cfg.camera.height_px,
        hfov_deg=m.hfov_deg,
        height_mm=m.height_mm,
        centre_x_mm=centre_x,
        centre_y_mm=m.centre_y_mm,
        tilt_deg=m.tilt_deg,
        dist=m.dist,
    )
