"""Reading the content of calibration sections into the geometry types (lens, lens + belt pose)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sorter.errors import CalibrationError
from sorter.geometry import CameraIntrinsics, CameraModel


def intrinsics_from_dict(data: dict[str, Any]) -> CameraIntrinsics:
    """Read the lens model from a calibration section (``intrinsics`` or ``belt``)."""
    try:
        dist = [float(v) for v in data["dist"]]
        if len(dist) != 5:
            raise ValueError(f"dist has {len(dist)} coefficients, expected 5 (k1, k2, p1, p2, k3)")
        return CameraIntrinsics(
            width_px=int(data["width_px"]),
            height_px=int(data["height_px"]),
            fx=float(data["fx"]),
            fy=float(data["fy"]),
            cx=float(data["cx"]),
            cy=float(data["cy"]),
            dist=(dist[0], dist[1], dist[2], dist[3], dist[4]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CalibrationError(f"intrinsics are incomplete or malformed ({e}); re-run 'sorter calibrate intrinsics'") from None


def camera_from_belt_dict(data: dict[str, Any]) -> CameraModel:
    """Rebuild the :class:`CameraModel` stored in a belt section."""
    intr = intrinsics_from_dict(data)
    try:
        rvec = np.array([float(v) for v in data["rvec"]])
        tvec = np.array([float(v) for v in data["tvec_mm"]])
    except (KeyError, TypeError, ValueError) as e:
        raise CalibrationError(f"belt pose is incomplete or malformed ({e}); re-run 'sorter calibrate belt'") from None
    if rvec.shape != (3,) or tvec.shape != (3,):
        raise CalibrationError("belt pose needs rvec and tvec_mm of 3 numbers each; re-run 'sorter calibrate belt'")
    return intr.with_pose(rvec, tvec)
