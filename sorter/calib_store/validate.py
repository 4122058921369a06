"""Validation of calibration sections and versions: every problem in words, with the command that fixes it."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np

from sorter.calib_store.document import LENS_KEYS, PROVENANCES, SECTIONS, Calibration, command_of, parse_utc
from sorter.calib_store.sections import camera_from_belt_dict
from sorter.errors import CalibrationError

#: largest believable command-to-air delay of a valve
MAX_LATENCY_MS = 1000.0


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
        problems.append(f"{where} did not pass ({why}); repeat 'sorter calibrate {command_of(kind)}'")
    prov = data.get("provenance", "measured")
    if isinstance(prov, dict):
        prov = prov.get("source")
    if prov not in PROVENANCES:
        problems.append(f"{where}: provenance {prov!r} is unknown (expected one of {', '.join(PROVENANCES)})")
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
            cam = camera_from_belt_dict(data)
            centre = -cam.rotation.T @ np.asarray(cam.tvec_mm)
            if centre[2] >= 0:
                problems.append(f"{where}: the camera lies on or below the belt plane; repeat 'sorter calibrate belt'")
    if kind == "encoder":
        _finite(data, "mm_per_count", problems, where, positive=True)
    if kind == "valves":
        mean = _finite(data, "mean_latency_ms", problems, where)
        if mean is not None and not 0 <= mean <= MAX_LATENCY_MS:
            problems.append(f"{where}: mean_latency_ms = {mean:g} is outside 0..{MAX_LATENCY_MS:g} ms")
        valves = data.get("valves")
        if not isinstance(valves, list) or not valves:
            problems.append(f"{where}: 'valves' must list at least one valve")
        else:
            for i, v in enumerate(valves):
                if not isinstance(v, dict):
                    problems.append(f"{where}: valves[{i}] must be a mapping with 'valve' and 'latency_ms'")
                    continue
                lat = _finite(v, "latency_ms", problems, f"{where} valves[{i}]")
                if lat is not None and not 0 <= lat <= MAX_LATENCY_MS:
                    problems.append(f"{where} valves[{i}]: latency_ms = {lat:g} is outside 0..{MAX_LATENCY_MS:g} ms")
                idx = v.get("valve")
                if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
                    problems.append(f"{where} valves[{i}]: 'valve' = {idx!r} must be a valve index (0, 1, ...)")
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
        same = all(_close(intr.get(k), belt.get(k)) for k in LENS_KEYS)
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
