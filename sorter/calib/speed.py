"""Encoder scale (mm per count) and belt-speed stability from marker sheets riding the belt.

Every identified sheet point ``i`` keeps a constant belt-fixed position
``u_i`` while the belt moves, so its world position in frame ``j`` is
``y_ij = u_i + mm_per_count * count_j``. The fit removes each point's mean
(one intercept per point) and regresses the remaining along-belt motion on the
encoder counts. Residuals, the standard error of the slope, the sideways drift
of the sheet and the belt speed between frames are reported.

Alternatively :func:`mm_per_count_from_length` turns a measured belt length
(e.g. one full belt revolution between two passes of a mark) into a scale.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sorter.calib.boards import BoardDetection
from sorter.errors import CalibrationError
from sorter.geometry import CameraModel

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Sightings:
    """Identified sheet points seen in frames, columnar.

    Attributes:
        frame: ``(N,)`` frame index of each sighting.
        t_ns: ``(N,)`` exposure time of that frame.
        count: ``(N,)`` encoder count at exposure.
        point_id: ``(N,)`` id of the sheet point.
        x_mm: ``(N,)`` across-belt position (from the belt calibration).
        y_w_mm: ``(N,)`` along-belt world position.
    """

    frame: I64
    t_ns: I64
    count: I64
    point_id: I64
    x_mm: F64
    y_w_mm: F64

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    @staticmethod
    def concat(parts: list[Sightings]) -> Sightings:
        if not parts:
            e = np.zeros(0, np.int64)
            return Sightings(e, e.copy(), e.copy(), e.copy(), np.zeros(0), np.zeros(0))
        return Sightings(
            np.concatenate([p.frame for p in parts]),
            np.concatenate([p.t_ns for p in parts]),
            np.concatenate([p.count for p in parts]),
            np.concatenate([p.point_id for p in parts]),
            np.concatenate([p.x_mm for p in parts]),
            np.concatenate([p.y_w_mm for p in parts]),
        )


def sightings_from_detection(detection: BoardDetection, camera: CameraModel, frame: int, t_ns: int, count: int) -> Sightings:
    """Project one frame's sheet points onto the belt with the calibrated camera."""
    n = len(detection)
    xy = camera.pixel_to_belt(detection.image_points_px) if n else np.zeros((0, 2))
    return Sightings(
        frame=np.full(n, frame, np.int64),
        t_ns=np.full(n, t_ns, np.int64),
        count=np.full(n, count, np.int64),
        point_id=detection.point_ids.astype(np.int64),
        x_mm=xy[:, 0].astype(np.float64),
        y_w_mm=xy[:, 1].astype(np.float64),
    )


@dataclass(frozen=True)
class SpeedThresholds:
    """Pass/fail limits of an encoder-scale calibration.

    Attributes:
        min_travel_mm: the belt must move at least this far while recording.
        min_counts: the encoder must count at least this many counts.
        max_rel_std_error: largest relative standard error of mm/count.
        max_residual_rms_mm: largest RMS of the along-belt residuals.
        max_speed_cv: speed variation (std/mean between frames) above which stability is flagged.
    """

    min_travel_mm: float = 300.0
    min_counts: int = 100
    max_rel_std_error: float = 0.0005
    max_residual_rms_mm: float = 2.0
    max_speed_cv: float = 0.05


@dataclass(frozen=True)
class SpeedFit:
    """Encoder scale and belt-speed report.

    Attributes:
        mm_per_count: fitted belt travel per encoder count.
        rel_std_error: standard error of ``mm_per_count`` relative to it.
        residual_rms_mm: RMS along-belt residual of the fit.
        travel_mm: belt travel covered by the recording (encoder counts times the fitted scale).
        counts_span: encoder counts covered.
        n_frames: frames with sightings.
        n_points: distinct sheet points used.
        speed_mean_mm_s: mean belt speed between frames (from the encoder and the fit).
        speed_std_mm_s: standard deviation of the frame-to-frame speed.
        speed_min_mm_s: slowest frame-to-frame speed.
        speed_max_mm_s: fastest frame-to-frame speed.
        lateral_drift_mm_per_m: sideways motion of the sheet per metre of travel (belt tracking).
        passed: thresholds met.
        problems: what failed and what to do.
        warnings: noteworthy but not failing (speed unstable, sheet drifting sideways).
    """

    mm_per_count: float
    rel_std_error: float
    residual_rms_mm: float
    travel_mm: float
    counts_span: int
    n_frames: int
    n_points: int
    speed_mean_mm_s: float
    speed_std_mm_s: float
    speed_min_mm_s: float
    speed_max_mm_s: float
    lateral_drift_mm_per_m: float
    passed: bool
    problems: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def counts_per_mm(self) -> float:
        return 1.0 / self.mm_per_count


def fit_mm_per_count(s: Sightings, thresholds: SpeedThresholds | None = None) -> SpeedFit:
    """Fit mm per encoder count from sheet points tracked across frames.

    Raises:
        CalibrationError: the belt did not move, the encoder did not count, the
            motion runs backwards, or too few points were seen twice; each
            message says what to do.
    """
    th = thresholds or SpeedThresholds()
    if len(s) == 0:
        raise CalibrationError("no sheet points were seen in any frame; lay the marker sheet on the belt in the camera view")
    _ids, inv, n_seen = np.unique(s.point_id, return_inverse=True, return_counts=True)
    keep = n_seen[inv] >= 2
    if int(keep.sum()) < 4:
        raise CalibrationError("too few sheet points were seen in two or more frames; record more frames while the sheet passes")
    frame, t_ns, count = s.frame[keep], s.t_ns[keep], s.count[keep].astype(np.float64)
    y, x = s.y_w_mm[keep], s.x_mm[keep]
    _, grp = np.unique(inv[keep], return_inverse=True)
    n_grp = int(grp.max()) + 1

    def demean(v: F64) -> F64:
        sums = np.bincount(grp, weights=v, minlength=n_grp)
        cnt = np.bincount(grp, minlength=n_grp).astype(np.float64)
        return np.asarray(v - (sums / cnt)[grp], dtype=np.float64)

    dy, dc, dx = demean(y), demean(count), demean(x)
    travel = float(np.ptp(_per_frame_position(frame, dy)))
    counts_span = int(np.ptp(count))
    if travel < th.min_travel_mm and counts_span < th.min_counts:
        raise CalibrationError(
            f"the belt did not move during the recording (sheet moved {travel:.1f} mm, encoder counted {counts_span}); "
            f"start the belt and record while the sheet travels at least {th.min_travel_mm:g} mm through the view"
        )
    if counts_span < th.min_counts:
        raise CalibrationError(
            f"the sheet moved {travel:.0f} mm but the encoder counted only {counts_span}; check the encoder is connected, "
            "powered and read by this machine (sorter calibrate speed --help: encoder source)"
        )
    if travel < th.min_travel_mm:
        raise CalibrationError(
            f"the encoder counted {counts_span} but the sheet moved only {travel:.1f} mm in the view: the sheet is slipping or "
            f"not on the belt, or the belt moved too little; record at least {th.min_travel_mm:g} mm of travel"
        )
    sxx = float(np.dot(dc, dc))
    m = float(np.dot(dc, dy) / sxx)
    if m <= 0:
        raise CalibrationError(
            "the sheet moves upstream while the encoder counts up: the encoder counts backwards (swap its A/B channels or set "
            "the direction in the controller) or the belt calibration's y axis is reversed (re-lay the sheet, arrow downstream)"
        )
    res = dy - m * dc
    dof = max(1, len(dy) - n_grp - 1)
    sigma = math.sqrt(float(np.dot(res, res)) / dof)
    se = sigma / math.sqrt(sxx)
    res_rms = float(np.sqrt(np.mean(res**2)))
    drift = float(np.dot(dy, dx) / max(float(np.dot(dy, dy)), 1e-12)) * 1000.0

    # Frame-to-frame speed from the encoder (scaled by the fit).
    f_ids, f_first = np.unique(frame, return_index=True)
    f_t = t_ns[f_first].astype(np.float64) * 1e-9
    f_c = count[f_first]
    order = np.argsort(f_t)
    f_t, f_c = f_t[order], f_c[order]
    dt = np.diff(f_t)
    ok = dt > 0
    speeds = (np.diff(f_c)[ok] * m) / dt[ok]
    if len(speeds):
        sp_mean, sp_std = float(speeds.mean()), float(speeds.std())
        sp_min, sp_max = float(speeds.min()), float(speeds.max())
    else:
        sp_mean = sp_std = sp_min = sp_max = float("nan")

    problems = []
    warnings = []
    if se / m > th.max_rel_std_error:
        problems.append(
            f"mm per count is uncertain to {se / m:.3%} (limit {th.max_rel_std_error:.3%}); record longer or with a sharper image"
        )
    if res_rms > th.max_residual_rms_mm:
        problems.append(
            f"positions scatter by {res_rms:.2f} mm RMS (limit {th.max_residual_rms_mm:g}): the sheet slipped on the belt, "
            "frames are blurred, or encoder counts are not latched at exposure"
        )
    if len(speeds) and sp_mean > 0 and sp_std / sp_mean > th.max_speed_cv:
        warnings.append(
            f"belt speed varies by {sp_std / sp_mean:.1%} between frames ({sp_min:.0f}..{sp_max:.0f} mm/s): "
            "check the drive; position-stamped firing copes, host-timed firing will not"
        )
    if abs(drift) > 5.0:
        warnings.append(f"the sheet drifts sideways {drift:+.1f} mm per metre of travel: check the belt tracking")
    return SpeedFit(
        mm_per_count=m,
        rel_std_error=se / m,
        residual_rms_mm=res_rms,
        travel_mm=counts_span * m,
        counts_span=counts_span,
        n_frames=len(f_ids),
        n_points=n_grp,
        speed_mean_mm_s=sp_mean,
        speed_std_mm_s=sp_std,
        speed_min_mm_s=sp_min,
        speed_max_mm_s=sp_max,
        lateral_drift_mm_per_m=drift,
        passed=not problems,
        problems=tuple(problems),
        warnings=tuple(warnings),
    )


def _per_frame_position(frame: I64, dy: F64) -> F64:
    """Mean demeaned along-belt position per frame (how far the sheet moved, camera-measured)."""
    _, f_inv = np.unique(frame, return_inverse=True)
    sums = np.bincount(f_inv, weights=dy)
    cnt = np.bincount(f_inv).astype(np.float64)
    return np.asarray(sums / cnt, dtype=np.float64)


def mm_per_count_from_length(length_mm: float, counts: int) -> float:
    """Scale from a measured belt length and the counts the encoder gave over it.

    Args:
        length_mm: measured belt travel (e.g. the belt's full length, marked and taped).
        counts: encoder counts over that travel.

    Raises:
        CalibrationError: non-positive inputs, saying what to measure.
    """
    if not (length_mm > 0 and math.isfinite(length_mm)):
        raise CalibrationError(f"measured length {length_mm!r} mm must be a positive number; measure the belt travel with a tape")
    if counts <= 0:
        raise CalibrationError(
            f"the encoder counted {counts} over {length_mm:g} mm: the belt did not move or the encoder is not counting; "
            "run the belt and read the count again"
        )
    return length_mm / counts


def speed_fit_to_dict(fit: SpeedFit, thresholds: SpeedThresholds, method: str) -> dict[str, Any]:
    """The YAML section of an encoder calibration."""

    def num(v: float) -> float | None:
        return None if math.isnan(v) else float(v)

    return {
        "method": method,
        "mm_per_count": fit.mm_per_count,
        "counts_per_mm": fit.counts_per_mm,
        "rel_std_error": fit.rel_std_error,
        "residual_rms_mm": fit.residual_rms_mm,
        "travel_mm": fit.travel_mm,
        "counts_span": fit.counts_span,
        "frames": fit.n_frames,
        "points": fit.n_points,
        "speed_mm_s": {
            "mean": num(fit.speed_mean_mm_s),
            "std": num(fit.speed_std_mm_s),
            "min": num(fit.speed_min_mm_s),
            "max": num(fit.speed_max_mm_s),
        },
        "lateral_drift_mm_per_m": fit.lateral_drift_mm_per_m,
        "passed": fit.passed,
        "problems": list(fit.problems),
        "warnings": list(fit.warnings),
        "thresholds": {
            "min_travel_mm": thresholds.min_travel_mm,
            "min_counts": thresholds.min_counts,
            "max_rel_std_error": thresholds.max_rel_std_error,
            "max_residual_rms_mm": thresholds.max_residual_rms_mm,
        },
    }


def length_fit_to_dict(length_mm: float, counts: int) -> dict[str, Any]:
    """The YAML section of an encoder scale taken from a measured belt length."""
    m = mm_per_count_from_length(length_mm, counts)
    return {
        "method": "measured_length",
        "mm_per_count": m,
        "counts_per_mm": 1.0 / m,
        "length_mm": length_mm,
        "counts_span": counts,
        "passed": True,
        "problems": [],
        "warnings": [],
    }
