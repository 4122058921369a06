"""Which camera model the pipeline uses: a calibration file, or the simulator's true mount."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sorter.errors import ConfigError
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


def camera_model_for(cfg: Config) -> CameraModel:
    """Camera model used to map detections onto the belt.

    A ``camera.calibration_file`` wins; without one, a simulated camera uses its
    true mount (a perfect calibration) and a real camera is a configuration error.
    """
    if cfg.camera.calibration_file:
        from sorter.calib_store import load_camera_model

        return load_camera_model(
            cfg.camera.calibration_file,
            cfg.camera.width_px,
            cfg.camera.height_px,
            max_age_days=cfg.camera.calibration_max_age_days,
        )
    if cfg.camera.type == "sim":
        return sim_camera_model(cfg)
    raise ConfigError(
        f"camera.calibration_file is not set for camera.type = {cfg.camera.type!r}; "
        "run 'sorter calibrate intrinsics' and 'sorter calibrate belt' and set the file they write"
    )
