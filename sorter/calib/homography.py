"""Camera-to-belt pose from a printed marker sheet lying flat on the belt.

The sheet's board coordinates map to belt coordinates by a shift: the sheet is
laid with its x axis across the belt and its y axis along the direction of
travel, its board origin at ``(x_mm, y_mm)`` on the belt. With the lens model
from the intrinsics step, ``cv2.solvePnP`` gives the belt->camera pose, i.e. a
:class:`sorter.geometry.CameraModel` whose ``pixel_to_belt`` is the
(undistorting) pixel -> belt-mm mapping. Residuals are measured in belt
millimetres by back-projecting every detected point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sorter.calib.boards import BoardDetection
from sorter.calib.intrinsics import CameraIntrinsics
from sorter.calib_store import camera_from_belt_dict as camera_from_belt_dict  # read from a file: the store's job
from sorter.errors import CalibrationError
from sorter.geometry import CameraModel

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SheetPlacement:
    """Where the sheet lies on the belt.

    Attributes:
        x_mm: across-belt distance from the belt's left edge to the sheet's board origin.
        y_mm: along-belt position of the board origin; 0 makes the sheet's first row
            the camera reference line (``y_w_mm = 0``) that ``airjet.y_eject_mm`` is measured from.
    """

    x_mm: float = 0.0
    y_mm: float = 0.0


@dataclass(frozen=True)
class BeltThresholds:
    """Pass/fail limits of a belt calibration.

    Attributes:
        max_rms_mm: RMS of the back-projected residuals.
        max_error_mm: largest single residual.
        min_points: fewest detected sheet points.
        min_coverage: share of the image the sheet must cover (residuals are measured only there).
    """

    max_rms_mm: float = 1.0
    max_error_mm: float = 3.0
    min_points: int = 12
    min_coverage: float = 0.25


@dataclass(frozen=True)
class BeltFit:
    """A fitted camera-to-belt pose with its residuals.

    Attributes:
        camera: intrinsics plus belt pose.
        image_points_px: ``(N, 2)`` detected points used.
        belt_points_mm: ``(N, 2)`` where they are on the belt (from the sheet geometry).
        residuals_mm: ``(N, 2)`` back-projected minus true, belt mm.
        rms_mm: RMS residual length.
        max_mm: largest residual length.
        cell_rms_mm: ``(3, 3)`` RMS per image third (rows top to bottom, columns left to right), NaN where empty.
        coverage_fraction: share of the image inside the convex hull of the points.
        camera_height_mm: height of the camera's optical centre above the belt.
        passed: all thresholds met.
        problems: what failed, and what to do.
    """

    camera: CameraModel
    image_points_px: F64
    belt_points_mm: F64
    residuals_mm: F64
    rms_mm: float
    max_mm: float
    cell_rms_mm: F64
    coverage_fraction: float
    camera_height_mm: float
    passed: bool
    problems: tuple[str, ...]


def fit_belt_pose(
    detection: BoardDetection,
    intrinsics: CameraIntrinsics,
    placement: SheetPlacement,
    thresholds: BeltThresholds | None = None,
) -> BeltFit:
    """Fit the belt->camera pose from one view of the sheet.

    Args:
        detection: the sheet's points (must carry ids: ChArUco or ArUco grid).
        intrinsics: lens model, at the same image size as the view.
        placement: where the sheet lies on the belt.
        thresholds: pass/fail limits.

    Raises:
        CalibrationError: too few points, or a pose with the camera under the belt.
    """
    import cv2

    th = thresholds or BeltThresholds()
    n = len(detection)
    if n < max(6, th.min_points):
        raise CalibrationError(
            f"only {n} sheet points detected (need {max(6, th.min_points)}); lay the whole sheet flat in the camera view"
        )
    img = detection.image_points_px.astype(np.float64)
    belt = detection.object_points_mm[:, :2] + np.array([placement.x_mm, placement.y_mm])
    obj = np.column_stack([belt, np.zeros(n)])
    k, d = intrinsics.k_matrix, intrinsics.dist_array
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, d, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CalibrationError(
            "could not fit a pose to the sheet points; check the sheet is flat and the intrinsics match this camera"
        )
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, k, d, rvec, tvec)
    camera = intrinsics.with_pose(np.asarray(rvec, np.float64).reshape(3), np.asarray(tvec, np.float64).reshape(3))
    rot = camera.rotation
    centre = -rot.T @ np.asarray(camera.tvec_mm)
    height = float(-centre[2])
    if height <= 0:
        raise CalibrationError(
            "the fitted camera lies below the belt: the sheet is probably face down or mirrored; "
            "lay the printed side up with its arrow pointing downstream"
        )
    back = camera.pixel_to_belt(img)
    res = back - belt
    lengths = np.linalg.norm(res, axis=1)
    rms = float(np.sqrt(np.mean(lengths**2)))
    mx = float(lengths.max())
    cells = np.full((3, 3), np.nan)
    ci = np.clip((img[:, 0] * 3 / camera.width_px).astype(int), 0, 2)
    ri = np.clip((img[:, 1] * 3 / camera.height_px).astype(int), 0, 2)
    for r in range(3):
        for c in range(3):
            sel = (ri == r) & (ci == c)
            if np.any(sel):
                cells[r, c] = float(np.sqrt(np.mean(lengths[sel] ** 2)))
    hull = cv2.convexHull(img.astype(np.float32))
    cover = float(cv2.contourArea(hull)) / float(camera.width_px * camera.height_px)
    problems = []
    if rms > th.max_rms_mm:
        problems.append(
            f"RMS residual {rms:.2f} mm exceeds {th.max_rms_mm:g} mm: the sheet may not lie flat, its print scale may be off "
            "(measure the scale bar), or the intrinsics belong to another lens/focus setting"
        )
    if mx > th.max_error_mm:
        problems.append(
            f"largest residual {mx:.2f} mm exceeds {th.max_error_mm:g} mm: flatten the sheet (creases, wind) and retry"
        )
    if cover < th.min_coverage:
        problems.append(
            f"the sheet covers only {cover:.0%} of the image (need {th.min_coverage:.0%}); use a larger sheet so the fit holds "
            "across the whole view"
        )
    return BeltFit(
        camera=camera,
        image_points_px=img,
        belt_points_mm=belt,
        residuals_mm=res,
        rms_mm=rms,
        max_mm=mx,
        cell_rms_mm=cells,
        coverage_fraction=cover,
        camera_height_mm=height,
        passed=not problems,
        problems=tuple(problems),
    )


def mapping_error_mm(estimate: CameraModel, truth: CameraModel, grid: int = 25) -> tuple[float, float]:
    """Compare two pixel->belt mappings over the whole image: ``(rms_mm, max_mm)`` on a ``grid x grid`` lattice."""
    us = np.linspace(0.0, truth.width_px - 1.0, grid)
    vs = np.linspace(0.0, truth.height_px - 1.0, grid)
    uu, vv = np.meshgrid(us, vs)
    px = np.column_stack([uu.ravel(), vv.ravel()])
    err = np.linalg.norm(estimate.pixel_to_belt(px) - truth.pixel_to_belt(px), axis=1)
    return float(np.sqrt(np.mean(err**2))), float(err.max())


def belt_fit_to_dict(
    fit: BeltFit, placement: SheetPlacement, thresholds: BeltThresholds, board: dict[str, Any]
) -> dict[str, Any]:
    """The YAML section of a belt calibration: lens, pose, homography, residuals."""
    cam = fit.camera
    h_px_to_mm = np.linalg.inv(cam.homography())
    h_px_to_mm = h_px_to_mm / h_px_to_mm[2, 2]
    return {
        "width_px": cam.width_px,
        "height_px": cam.height_px,
        "fx": cam.fx,
        "fy": cam.fy,
        "cx": cam.cx,
        "cy": cam.cy,
        "dist": list(cam.dist),
        "rvec": list(cam.rvec),
        "tvec_mm": list(cam.tvec_mm),
        "homography_undistorted_px_to_mm": h_px_to_mm.tolist(),
        "camera_height_mm": fit.camera_height_mm,
        "rms_mm": fit.rms_mm,
        "max_mm": fit.max_mm,
        "cell_rms_mm": [[None if np.isnan(v) else float(v) for v in row] for row in fit.cell_rms_mm],
        "coverage_fraction": fit.coverage_fraction,
        "passed": fit.passed,
        "problems": list(fit.problems),
        "thresholds": {
            "max_rms_mm": thresholds.max_rms_mm,
            "max_error_mm": thresholds.max_error_mm,
            "min_points": thresholds.min_points,
            "min_coverage": thresholds.min_coverage,
        },
        "sheet": {"board": board, "x_mm": placement.x_mm, "y_mm": placement.y_mm},
        "points": [
            {"px": [float(p[0]), float(p[1])], "belt_mm": [float(b[0]), float(b[1])], "residual_mm": [float(r[0]), float(r[1])]}
            for p, b, r in zip(fit.image_points_px, fit.belt_points_mm, fit.residuals_mm, strict=True)
        ],
    }
