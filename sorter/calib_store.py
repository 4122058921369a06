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
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from sorter import __version__
from sorter.errors import CalibrationError, ConfigError
from sorter.geometry import CameraModel

log = logging.getLogger(__name__)

FORMAT = "sorter-calibration/1"
SECTIONS: tuple[str, ...] = ("intrinsics", "belt", "encoder", "valves")
DEFAULT_MAX_AGE_DAYS = 180.0
_VERSION_RE = re.compile(r"^v(\d{4,})_(\d{8}T\d{6}Z)\.yaml$")
_LENS_KEYS = ("width_px", "height_px", "fx", "fy", "cx", "cy", "dist")


class CalibrationRefusedError(CalibrationError, ConfigError):
    """The calibration named by ``camera.calibration_file`` cannot be used (missing, malformed, failed, mismatched).

    Both a calibration and a configuration error, so start-up code that reports
    configuration problems (``sorter check``, ``sorter run``) reports it too.
    """


def utc_stamp(t: datetime) -> str:
    """ISO 8601 UTC with a trailing Z, seconds resolution."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    """Inverse of :func:`utc_stamp` (accepts any ISO 8601 with a zone)."""
    try:
        t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise CalibrationError(f"date {text!r} is not ISO 8601 (e.g. 2025-03-01T10:15:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Calibration:
    """One version of a machine's calibration (or a single standalone section).

    Attributes:
        machine: machine name ('' for a standalone section file).
        version: version number in the store (0 for a standalone section file).
        created_utc: when this version was written.
        sections: section name -> section mapping.
        path: file it was read from.
        previous: file name of the version it was derived from.
    """

    machine: str
    version: int
    created_utc: datetime
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None
    previous: str | None = None

    def section(self, kind: str) -> dict[str, Any]:
        """A section, or a CalibrationError saying which command makes it."""
        if kind not in self.sections:
            where = self.path or "this calibration"
            raise CalibrationError(f"{where} has no '{kind}' calibration; run 'sorter calibrate {_command_of(kind)}' first")
        return self.sections[kind]

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "machine": self.machine,
            "version": self.version,
            "created_utc": utc_stamp(self.created_utc),
            "previous": self.previous,
        }
        for k in SECTIONS:
            if k in self.sections:
                doc[k] = self.sections[k]
        return doc


def _command_of(kind: str) -> str:
    return {"intrinsics": "intrinsics", "belt": "belt", "encoder": "speed", "valves": "timing"}.get(kind, kind)


def make_section(kind: str, body: dict[str, Any], now_utc: datetime, version: int = 0) -> dict[str, Any]:
    """Wrap a step's result with its header (kind, date, version, software version)."""
    if kind not in SECTIONS:
        raise ValueError(f"unknown calibration section {kind!r}; known: {', '.join(SECTIONS)}")
    return {"kind": kind, "created_utc": utc_stamp(now_utc), "version": version, "sorter_version": __version__, **body}


# ---------------------------------------------------------------------- validation


def _finite(data: dict[str, Any], key: str, problems: list[str], where: str, positive: bool = False) -> float | None:
    v = data.get(key)
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        problems.append(f"{where}: '{key}' is missing or not a number ({v!r})")
        return None
    if not math.isfinite(f) or (positive and f <= 0):
        problems.append(f"{where}: '{key}' = {f!r} must be a finite{' positive' if positive else ''} number")
        return None
    return f


def _vector(data: dict[str, Any], key: str, n: int, problems: list[str], where: str) -> None:
    v = data.get(key)
    if not isinstance(v, list | tuple) or len(v) != n:
        problems.append(f"{where}: '{key}' must be a list of {n} numbers, got {v!r}")
        return
    try:
        if not all(math.isfinite(float(x)) for x in v):
            problems.append(f"{where}: '{key}' has a non-finite number")
    except (TypeError, ValueError):
        problems.append(f"{where}: '{key}' has a value that is not a number")


def validate_section(kind: str, data: dict[str, Any]) -> list[str]:
    """Problems of one section (empty when usable)."""
    where = f"{kind} calibration"
    problems: list[str] = []
    if not isinstance(data, dict):
        return [f"{where}: expected a mapping, got {type(data).__name__}"]
    if data.get("passed") is not True:
        why = "; ".join(str(p) for p in data.get("problems") or []) or "it is not marked as passed"
        problems.append(f"{where} did not pass ({why}); repeat 'sorter calibrate {_command_of(kind)}'")
    if "created_utc" in data:
        try:
            parse_utc(data["created_utc"])
        except CalibrationError as e:
            problems.append(f"{where}: {e}")
    if kind in ("intrinsics", "belt"):
        w = _finite(data, "width_px", problems, where, positive=True)
        h = _finite(data, "height_px", problems, where, positive=True)
        _finite(data, "fx", problems, where, positive=True)
        _finite(data, "fy", problems, where, positive=True)
        cx = _finite(data, "cx", problems, where)
        cy = _finite(data, "cy", problems, where)
        _vector(data, "dist", 5, problems, where)
        if w and cx is not None and not 0 <= cx <= w:
            problems.append(f"{where}: principal point cx = {cx:.1f} lies outside the image width {w:.0f}")
        if h and cy is not None and not 0 <= cy <= h:
            problems.append(f"{where}: principal point cy = {cy:.1f} lies outside the image height {h:.0f}")
    if kind == "intrinsics":
        _finite(data, "rms_px", problems, where)
    if kind == "belt":
        _vector(data, "rvec", 3, problems, where)
        _vector(data, "tvec_mm", 3, problems, where)
        _finite(data, "rms_mm", problems, where)
        if not problems:
            from sorter.calib.homography import camera_from_belt_dict

            cam = camera_from_belt_dict(data)
            import numpy as np

            centre = -cam.rotation.T @ np.asarray(cam.tvec_mm)
            if centre[2] >= 0:
                problems.append(f"{where}: the camera lies on or below the belt plane; repeat 'sorter calibrate belt'")
    if kind == "encoder":
        _finite(data, "mm_per_count", problems, where, positive=True)
    if kind == "valves":
        _finite(data, "mean_latency_ms", problems, where)
        if not isinstance(data.get("valves"), list) or not data.get("valves"):
            problems.append(f"{where}: 'valves' must list at least one valve")
    return problems


def validate_calibration(cal: Calibration) -> list[str]:
    """Problems of every section and between sections (e.g. a belt pose made with other intrinsics)."""
    problems: list[str] = []
    for kind, data in cal.sections.items():
        if kind not in SECTIONS:
            problems.append(f"unknown section '{kind}'; known sections are {', '.join(SECTIONS)}")
            continue
        problems += validate_section(kind, data)
    intr, belt = cal.sections.get("intrinsics"), cal.sections.get("belt")
    if intr and belt and not problems:
        same = all(_close(intr.get(k), belt.get(k)) for k in _LENS_KEYS)
        if not same:
            problems.append(
                "the belt pose was fitted with other intrinsics than the ones stored (intrinsics were redone after it); "
                "repeat 'sorter calibrate belt'"
            )
    return problems


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return bool(a == b)


def age_days(cal: Calibration, now_utc: datetime, kind: str | None = None) -> float:
    """Age in days of the version, or of one section (when it was made)."""
    t = cal.created_utc
    if kind is not None and "created_utc" in cal.sections.get(kind, {}):
        t = parse_utc(cal.sections[kind]["created_utc"])
    return (now_utc - t).total_seconds() / 86400.0


# ---------------------------------------------------------------------- reading


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CalibrationError(
            f"calibration file '{path}' does not exist; check camera.calibration_file or run 'sorter calibrate'"
        ) from None
    except OSError as e:
        raise CalibrationError(f"calibration file '{path}' cannot be read ({e.strerror}); check its permissions") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CalibrationError(
            f"calibration file '{path}' is not valid YAML ({e}); restore it from the store's history"
        ) from None
    if not isinstance(data, dict):
        raise CalibrationError(f"calibration file '{path}' must hold a mapping, got {type(data).__name__}")
    return data


def load_calibration(path: str | Path) -> Calibration:
    """Read a version file, a machine directory (its latest version) or a standalone section file.

    Raises:
        CalibrationError: missing, unreadable or malformed file (not validation: see :func:`validate_calibration`).
    """
    p = Path(path)
    if p.is_dir():
        versions = list_versions(p)
        if not versions:
            raise CalibrationError(f"calibration directory '{p}' holds no version files (v0001_....yaml); run 'sorter calibrate'")
        p = versions[-1]
    doc = _read_yaml(p)
    if doc.get("format") == FORMAT:
        sections = {k: v for k, v in doc.items() if k in SECTIONS}
        return Calibration(
            machine=str(doc.get("machine", "")),
            version=int(doc.get("version", 0)),
            created_utc=parse_utc(doc.get("created_utc", "1970-01-01T00:00:00Z")),
            sections=sections,
            path=p,
            previous=doc.get("previous"),
        )
    kind = doc.get("kind")
    if kind in SECTIONS:
        return Calibration("", 0, parse_utc(doc.get("created_utc", "1970-01-01T00:00:00Z")), {str(kind): doc}, p, None)
    raise CalibrationError(
        f"'{p}' is not a calibration file (no 'format: {FORMAT}' and no 'kind' of {', '.join(SECTIONS)}); "
        "point camera.calibration_file at a file written by 'sorter calibrate'"
    )


def list_versions(machine_dir: str | Path) -> list[Path]:
    """Version files of a machine directory, oldest first."""
    d = Path(machine_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), f) for f in d.iterdir() if (m := _VERSION_RE.match(f.name))]
    return [f for _, f in sorted(found)]


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
    from sorter.calib.homography import camera_from_belt_dict

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


# ---------------------------------------------------------------------- writing


def _atomic_write_new(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as YAML to a path that must not exist yet (temp file, then hard link: never replaces)."""
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise CalibrationError(f"'{path}' appeared while writing; another calibration ran at the same time, retry") from None
    finally:
        os.unlink(tmp)


def write_section_file(path: str | Path, section: dict[str, Any]) -> Path:
    """Write a standalone section file; an existing file is first renamed aside (kept, never overwritten).

    Returns:
        The path written.
    """
    p = Path(path)
    problems = validate_section(str(section.get("kind")), section)
    if problems:
        raise CalibrationError("nothing written: " + "; ".join(problems))
    if p.exists():
        try:
            old = _read_yaml(p)
            stamp = parse_utc(old.get("created_utc", "1970-01-01T00:00:00Z")).strftime("%Y%m%dT%H%M%SZ")
        except CalibrationError:
            stamp = "unreadable"
        n = 0
        while True:
            aside = p.with_name(f"{p.stem}.{stamp}{'' if n == 0 else f'-{n}'}{p.suffix}")
            if not aside.exists():
                break
            n += 1
        os.rename(p, aside)
        log.info("kept the previous '%s' as '%s'", p, aside.name)
    _atomic_write_new(p, section)
    return p


class CalibrationStore:
    """The version history of one machine's calibration.

    Args:
        root: directory holding one sub-directory per machine.
        machine: machine name (letters, digits, ``-``, ``_``, ``.``).
    """

    def __init__(self, root: str | Path, machine: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", machine or ""):
            raise CalibrationError(f"machine name {machine!r} must be letters, digits, '-', '_' or '.' (e.g. line-1)")
        self.machine = machine
        self.dir = Path(root) / machine

    def versions(self) -> list[Path]:
        """Version files, oldest first."""
        return list_versions(self.dir)

    def latest(self) -> Calibration | None:
        """The newest version, or ``None`` for a new machine."""
        v = self.versions()
        return load_calibration(v[-1]) if v else None

    def add(self, kind: str, body: dict[str, Any], now_utc: datetime) -> Path:
        """Store a new calibration step as a new version (copying the other sections of the latest).

        Raises:
            CalibrationError: the new section fails validation; nothing is written.
        """
        prev = self.latest()
        version = (prev.version if prev else 0) + 1
        section = make_section(kind, body, now_utc, version)
        problems = validate_section(kind, section)
        if problems:
            raise CalibrationError("nothing written: " + "; ".join(problems))
        sections = dict(prev.sections) if prev else {}
        sections[kind] = section
        cal = Calibration(
            machine=self.machine,
            version=version,
            created_utc=now_utc,
            sections=sections,
            previous=prev.path.name if prev and prev.path else None,
        )
        path = self.dir / f"v{version:04d}_{now_utc.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.yaml"
        _atomic_write_new(path, cal.to_document())
        log.info("calibration %s stored as %s", kind, path)
        return path
