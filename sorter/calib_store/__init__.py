"""Calibration files: per machine, versioned, dated, validated, history kept.

Layout of a machine's store (``ROOT/MACHINE/``)::

    v0001_20250301T101500Z.yaml   intrinsics
    v0002_20250301T103000Z.yaml   intrinsics + belt
    v0003_20250302T090000Z.yaml   intrinsics + belt + encoder (+ valves ...)

Each version holds every section known so far; a new calibration step copies
the latest version, replaces its own section and is written as a *new* file
(never in place, created exclusively), so the history is the directory. A
section records when and in which version it was made, its measurements and
residuals, and whether it passed. ``camera.calibration_file`` may name one
version file or the machine directory (its latest version).

A section can also be written alone (``sorter calibrate ... --out FILE``): the
same keys at the top level (``fx``, ``fy``, ``cx``, ``cy``, ``dist``, ``rms_px``
for intrinsics) plus ``kind`` and ``created_utc``. An existing file of that
name is renamed aside first, never overwritten.

Loading validates: a failed or malformed section, a belt pose fitted with other
intrinsics than the stored ones, or an image size other than the camera's is
refused with :class:`sorter.errors.CalibrationError`; a calibration older than
``max_age_days`` is logged as a warning.

The one home of calibration data: ``document`` (a version in memory), ``sections``
(section content to geometry), ``validate``, ``files`` (reading and writing) and
``camera`` (the validated camera model of a line). It depends on nothing above
:mod:`sorter.geometry` and :mod:`sorter.errors`; the calibration maths is in
:mod:`sorter.calib`.
"""

from sorter.calib_store.camera import load_camera_model
from sorter.calib_store.document import (
    DEFAULT_MAX_AGE_DAYS,
    FORMAT,
    SECTIONS,
    Calibration,
    CalibrationRefusedError,
    make_section,
    parse_utc,
    utc_stamp,
)
from sorter.calib_store.files import CalibrationStore, list_versions, load_calibration, write_section_file
from sorter.calib_store.sections import camera_from_belt_dict, intrinsics_from_dict
from sorter.calib_store.validate import age_days, validate_calibration, validate_section

__all__ = [
    "DEFAULT_MAX_AGE_DAYS",
    "FORMAT",
    "SECTIONS",
    "Calibration",
    "CalibrationRefusedError",
    "CalibrationStore",
    "age_days",
    "camera_from_belt_dict",
    "intrinsics_from_dict",
    "list_versions",
    "load_calibration",
    "load_camera_model",
    "make_section",
    "parse_utc",
    "utc_stamp",
    "validate_calibration",
    "validate_section",
    "write_section_file",
]
