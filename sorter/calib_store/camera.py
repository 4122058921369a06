"""The camera model a line uses, read from its calibration (validated, of the configured image size, dated)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sorter.calib_store.document import DEFAULT_MAX_AGE_DAYS, CalibrationRefusedError
from sorter.calib_store.files import load_calibration
from sorter.calib_store.sections import camera_from_belt_dict
from sorter.calib_store.validate import age_days, validate_calibration
from sorter.errors import CalibrationError
from sorter.geometry import CameraModel

log = logging.getLogger(__name__)


def load_camera_model(
    path: str,
    width_px: int,
    height_px: int,
    *,
    max_age_days: float | None = DEFAULT_MAX_AGE_DAYS,
    now_utc: datetime | None = None,
) -> CameraModel:
    """The validated camera model (lens + belt pose) of a calibration, for the camera's image size.

    Args:
        path: version file, machine directory, or standalone belt section file.
        width_px: the camera's configured image width.
        height_px: the camera's configured image height.
        max_age_days: warn (log) when the belt calibration is older; ``None`` disables.
        now_utc: the current time (default: the system's UTC clock; injected in tests).

    Raises:
        CalibrationRefusedError: missing or malformed file, no belt section, validation failed, or another image size.
    """
    try:
        return _load_camera_model(path, width_px, height_px, max_age_days, now_utc)
    except CalibrationRefusedError:
        raise
    except CalibrationError as e:
        raise CalibrationRefusedError(f"camera.calibration_file = '{path}': {e}") from None


def _load_camera_model(
    path: str, width_px: int, height_px: int, max_age_days: float | None, now_utc: datetime | None
) -> CameraModel:
    cal = load_calibration(path)
    problems = validate_calibration(cal)
    if "belt" not in cal.sections:
        kinds = ", ".join(cal.sections) or "nothing"
        problems.insert(0, f"it holds {kinds} but no belt pose; run 'sorter calibrate belt'")
    if problems:
        raise CalibrationError(f"calibration '{cal.path}' refused: " + "; ".join(problems))
    belt = cal.sections["belt"]
    if int(belt["width_px"]) != width_px or int(belt["height_px"]) != height_px:
        raise CalibrationError(
            f"calibration '{cal.path}' was made at {belt['width_px']}x{belt['height_px']} px but the camera is configured for "
            f"{width_px}x{height_px}; set camera.width_px/height_px to the calibrated size or recalibrate at this size"
        )
    if max_age_days is not None:
        now = now_utc or datetime.now(UTC)
        age = age_days(cal, now, "belt")
        if age > max_age_days:
            log.warning(
                "calibration '%s' (belt pose) is %.0f days old, more than %g; re-check it with 'sorter calibrate belt'",
                cal.path,
                age,
                max_age_days,
            )
    return camera_from_belt_dict(belt)
