"""What a line takes from its calibration: camera model and image size, encoder scale, latency of each valve.

The one judgement of "can this line use this calibration", shared by the runtime
(``sorter run``, ``sorter check``) and ``sorter calibrate history`` so they never
disagree. A line says what it needs (:class:`LineNeeds`): a real camera needs
the lens and the belt pose; a real belt and real valves refuse values that came
from the simulator or a controller emulator (``provenance``). Sections a line
does not need are still validated when present: a broken section is never used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sorter.calib_store.document import PROVENANCES, Calibration, command_of, parse_utc
from sorter.calib_store.files import load_calibration
from sorter.calib_store.sections import camera_from_belt_dict
from sorter.calib_store.validate import validate_calibration
from sorter.errors import CalibrationError
from sorter.geometry import CameraModel


@dataclass(frozen=True)
class LineNeeds:
    """What a line requires of its calibration.

    Attributes:
        camera_real: a real camera: the lens and belt pose are required and must have been measured.
        plant_real: a real belt encoder and real valves: encoder and valve sections must have been measured.
        width_px: the camera's image width when the config sets it (None: take the calibrated size).
        height_px: the camera's image height when the config sets it.
        valve_count: valves in the air-jet bank (None: a robot line).
    """

    camera_real: bool
    plant_real: bool
    width_px: int | None = None
    height_px: int | None = None
    valve_count: int | None = None

    def describe(self) -> str:
        cam = "a real camera" if self.camera_real else "the simulated camera"
        plant = "a real belt and valves" if self.plant_real else "simulated belt and valves"
        return f"{cam}, {plant}"


@dataclass(frozen=True)
class SectionInfo:
    """When and how one section was made."""

    kind: str
    version: int
    created_utc: datetime
    provenance: str
    age_days: float


@dataclass(frozen=True)
class LineCalibration:
    """The values a line uses from one calibration version.

    Attributes:
        path: the version file read.
        camera: lens + belt pose (None: no belt section).
        counts_per_mm: belt encoder scale (None: no encoder section).
        latency_ms: command-to-air delay of each valve that measurably differs from the mean (see
            :func:`distinct_latencies`); the others run on ``mean_latency_ms``.
        mean_latency_ms: mean over the measured valves (None: no valve section).
        sections: when, in which version and how each section was made.
        warnings: things to tell the operator (old sections), not refusals.
    """

    path: Path | None
    camera: CameraModel | None
    counts_per_mm: float | None
    latency_ms: dict[int, float]
    mean_latency_ms: float | None
    sections: dict[str, SectionInfo] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def image_size(self) -> tuple[int, int] | None:
        return None if self.camera is None else (self.camera.width_px, self.camera.height_px)


def provenance_of(section: dict[str, Any]) -> str:
    """``measured`` (the default of files written before provenance was recorded), ``simulator`` or ``emulator``."""
    p = section.get("provenance", "measured")
    if isinstance(p, dict):
        p = p.get("source", "measured")
    return str(p)


def usability_problems(cal: Calibration, needs: LineNeeds) -> list[str]:
    """Why a line with ``needs`` cannot use ``cal`` (empty: it can). Validation of every section included."""
    problems = validate_calibration(cal)
    if needs.camera_real and "belt" not in cal.sections:
        kinds = ", ".join(cal.sections) or "nothing"
        problems.insert(0, f"it holds {kinds} but no belt pose, which a real camera needs; run 'sorter calibrate belt'")
    if "belt" in cal.sections and needs.width_px is not None and needs.height_px is not None:
        belt = cal.sections["belt"]
        try:
            size = (int(belt["width_px"]), int(belt["height_px"]))
        except (KeyError, TypeError, ValueError):
            size = None  # reported by the validation above
        if size is not None and size != (needs.width_px, needs.height_px):
            problems.append(
                f"it was made at {size[0]}x{size[1]} px but the camera is configured for {needs.width_px}x{needs.height_px}; "
                "set camera.width_px/height_px to the calibrated size (or remove them: the calibration sets them) "
                "or recalibrate at this size"
            )
    for kind, section in cal.sections.items():
        if not isinstance(section, dict):
            continue
        prov = provenance_of(section)
        if prov not in PROVENANCES:
            problems.append(f"{kind} calibration: provenance {prov!r} is unknown (expected one of {', '.join(PROVENANCES)})")
            continue
        real = needs.camera_real if kind in ("intrinsics", "belt") else needs.plant_real
        if real and prov != "measured":
            problems.append(
                f"{kind} calibration came from the {prov} (version {int(section.get('version', 0))}), not from this line; "
                f"a real line needs a measured one: run 'sorter calibrate {command_of(kind)}' on the line"
            )
    valves = cal.sections.get("valves")
    if isinstance(valves, dict) and needs.valve_count is not None:
        beyond = sorted(i for i in _valve_latencies(valves) if not 0 <= i < needs.valve_count)
        if beyond:
            problems.append(
                f"valves calibration measured valve(s) {beyond[:5]} but airjet.valves.count = {needs.valve_count}; "
                "repeat 'sorter calibrate timing' with this bank"
            )
    return problems


#: a valve keeps its own latency when it differs from the bank's mean by more than this many standard errors
DISTINCT_SE = 3.0


def _valve_latencies(section: dict[str, Any]) -> dict[int, float]:
    """Latency of each measured valve, by index (every valve the section lists, finite values only)."""
    out: dict[int, float] = {}
    for v in section.get("valves") or []:
        try:
            idx, lat = int(v["valve"]), float(v["latency_ms"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(lat):
            out[idx] = lat
    return out


def distinct_latencies(section: dict[str, Any], mean_ms: float) -> dict[int, float]:
    """The valves whose measured latency really differs from the bank's mean (the others run on the mean).

    A valve fitted from a few pulses scatters around the mean by its jitter over the square root of its pulses; a
    difference within ``DISTINCT_SE`` such standard errors is noise, and using it would add error instead of removing
    it. A valve listed without jitter and pulse count keeps its value.
    """
    out: dict[int, float] = {}
    for v in section.get("valves") or []:
        try:
            idx, lat = int(v["valve"]), float(v["latency_ms"])
        except (KeyError, TypeError, ValueError):
            continue
        if not math.isfinite(lat):
            continue
        try:
            se = float(v["jitter_ms"]) / math.sqrt(max(int(v["pulses"]), 1))
        except (KeyError, TypeError, ValueError):
            se = 0.0
        if not math.isfinite(se) or abs(lat - mean_ms) > DISTINCT_SE * se:
            out[idx] = lat
    return out


def _section_info(cal: Calibration, kind: str, now: datetime) -> SectionInfo:
    s = cal.sections[kind]
    created = parse_utc(s["created_utc"]) if "created_utc" in s else cal.created_utc
    try:
        version = int(s.get("version") or cal.version)
    except (TypeError, ValueError):
        version = cal.version
    return SectionInfo(
        kind=kind,
        version=version,
        created_utc=created,
        provenance=provenance_of(s),
        age_days=(now - created).total_seconds() / 86400.0,
    )


def read_line_calibration(
    path: str | Path,
    needs: LineNeeds,
    *,
    max_age_days: float | None = None,
    now_utc: datetime | None = None,
) -> LineCalibration:
    """Read, judge and extract the values a line uses.

    Args:
        path: version file, machine directory (its latest version) or a standalone section file.
        needs: what the line requires.
        max_age_days: sections older than this are named in ``warnings``.
        now_utc: the current time (injected in tests).

    Raises:
        CalibrationError: unreadable, invalid or unusable for this line; the message lists every reason.
    """
    cal = load_calibration(path)
    problems = usability_problems(cal, needs)
    if problems:
        raise CalibrationError(f"calibration '{cal.path}' refused: " + "; ".join(problems))
    now = now_utc or datetime.now(UTC)
    infos = {k: _section_info(cal, k, now) for k in cal.sections}
    warnings = tuple(
        f"{k} calibration is {i.age_days:.0f} days old (more than {max_age_days:g}); "
        f"check it with 'sorter calibrate {command_of(k)}'"
        for k, i in infos.items()
        if max_age_days is not None and i.age_days > max_age_days
    )
    camera = camera_from_belt_dict(cal.sections["belt"]) if "belt" in cal.sections else None
    counts_per_mm = None
    if "encoder" in cal.sections:
        counts_per_mm = 1.0 / float(cal.sections["encoder"]["mm_per_count"])
    latency: dict[int, float] = {}
    mean = None
    if "valves" in cal.sections:
        measured = _valve_latencies(cal.sections["valves"])
        mean = float(cal.sections["valves"]["mean_latency_ms"])
        latency = distinct_latencies(cal.sections["valves"], mean)
        if not measured:
            raise CalibrationError(
                f"calibration '{cal.path}': the valves section lists no usable latency; repeat 'sorter calibrate timing'"
            )
    return LineCalibration(cal.path, camera, counts_per_mm, latency, mean, infos, warnings)
