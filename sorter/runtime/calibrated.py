"""The calibration applied to a line's configuration: what the running line uses, and where each value came from.

``camera.calibration_file`` names the machine's calibration: one versioned store
holding every section (lens, belt pose, encoder scale, valve timing), so that one
pointer says which measurements a line runs on and the store's history covers them
all. Loading a line's configuration applies it (:func:`apply_calibration`):

* the image size (``camera.width_px``/``height_px``) and the camera model from the belt section;
* ``belt.encoder_counts_per_mm`` from the encoder section;
* ``airjet.valves.latency_per_valve_ms`` for each measured valve that really differs from the mean, and
  ``airjet.valves.latency_ms`` (the mean, for every other valve) from the valve section.

A key the configuration sets itself is an explicit override: the config wins and
``sorter check`` prints ``OVERRIDE``. Nothing is copied by hand, so a new
``sorter calibrate`` changes the next run with no config edit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sorter.calib_store.document import CalibrationRefusedError
from sorter.calib_store.line import LineCalibration, LineNeeds, read_line_calibration
from sorter.config import Config
from sorter.errors import CalibrationError

LINK_TYPES = ("serial", "modbus")


def real_camera(cfg: Config) -> bool:
    """A camera looking at a real belt (anything but the simulator's)."""
    return cfg.camera.type != "sim"


def real_plant(cfg: Config) -> bool:
    """A real belt encoder and valves: a real camera's line, or a controller link that is not emulated."""
    return real_camera(cfg) or (cfg.actuator.type in LINK_TYPES and not cfg.actuator.emulator)


def line_needs(cfg: Config) -> LineNeeds:
    """What this configuration requires of its calibration."""
    cam = cfg.camera
    explicit = {"width_px", "height_px"} & cam.model_fields_set
    return LineNeeds(
        camera_real=real_camera(cfg),
        plant_real=real_plant(cfg),
        width_px=cam.width_px if explicit else None,
        height_px=cam.height_px if explicit else None,
        valve_count=cfg.airjet.valves.count if cfg.line.mode == "airjet" else None,
    )


@dataclass(frozen=True)
class Applied:
    """What :func:`apply_calibration` did.

    Attributes:
        calibration: the calibration read (None: no ``camera.calibration_file``).
        used: key -> (value in words, where it came from) for the calibrated keys.
        overrides: one ``OVERRIDE`` line per key the config sets against a different calibrated value.
        warnings: old sections and values that should be calibrated but are not.
    """

    calibration: LineCalibration | None
    used: dict[str, tuple[str, str]] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _section_words(cal: LineCalibration, kind: str) -> str:
    info = cal.sections[kind]
    return f"calibration v{info.version} ({info.provenance}, {info.created_utc:%Y-%m-%d}, {info.age_days:.0f} days old)"


def apply_calibration(cfg: Config, now_utc: datetime | None = None) -> Config:
    """The configuration with the calibrated values in place (see the module's description).

    The result carries what was done (:func:`applied_of`). A configuration without a calibration file is
    returned as it is (with a record saying so).

    Raises:
        CalibrationRefusedError: the calibration cannot be read, is invalid, or cannot serve this line.
    """
    if applied_of(cfg) is not None:
        return cfg
    path = cfg.camera.calibration_file
    if not path:
        out = cfg.model_copy()
        warnings = []
        if real_plant(cfg) and cfg.actuator.type in LINK_TYPES:
            warnings.append(
                "no calibration file: belt.encoder_counts_per_mm and airjet.valves.latency_ms are the config's; "
                "run 'sorter calibrate speed' and 'sorter calibrate timing' and set camera.calibration_file"
            )
        out._applied = Applied(None, warnings=tuple(warnings))
        return out
    try:
        cal = read_line_calibration(
            path, line_needs(cfg), max_age_days=cfg.camera.calibration_max_age_days, now_utc=now_utc
        )
    except CalibrationRefusedError:
        raise
    except CalibrationError as e:
        raise CalibrationRefusedError(f"camera.calibration_file = '{path}': {e}") from None
    update: dict[str, Any] = {}
    used: dict[str, tuple[str, str]] = {}
    overrides: list[str] = []
    warnings = list(cal.warnings)

    if cal.camera is not None:
        w, h = cal.camera.width_px, cal.camera.height_px
        update["camera"] = cfg.camera.model_copy(update={"width_px": w, "height_px": h})
        used["camera"] = (f"{w}x{h} px, fx {cal.camera.fx:.1f} px", _section_words(cal, "belt"))
    elif not real_camera(cfg):
        used["camera"] = ("the simulator's true mount", "no belt pose in the calibration")

    if cal.counts_per_mm is not None:
        said = cal.counts_per_mm
        if "encoder_counts_per_mm" in cfg.belt.model_fields_set:
            mine = cfg.belt.encoder_counts_per_mm
            if not _same(said, mine):
                overrides.append(
                    f"OVERRIDE belt.encoder_counts_per_mm: calibration says {said:.6g}, config says {mine:.6g} "
                    "(the config wins; remove the key to use the calibration)"
                )
            used["belt.encoder_counts_per_mm"] = (f"{mine:.6g}", "config (override)")
        else:
            update["belt"] = cfg.belt.model_copy(update={"encoder_counts_per_mm": said})
            used["belt.encoder_counts_per_mm"] = (f"{said:.6g}", _section_words(cal, "encoder"))
    elif real_plant(cfg) and cfg.actuator.type in LINK_TYPES:
        warnings.append(
            "the calibration has no encoder scale: belt.encoder_counts_per_mm is the config's; run 'sorter calibrate speed'"
        )

    if cfg.line.mode == "airjet":
        _apply_valves(cfg, cal, update, used, overrides, warnings)

    out = cfg.model_copy(update=update)
    out._applied = Applied(cal, used, tuple(overrides), tuple(warnings))
    return out


def _apply_valves(
    cfg: Config,
    cal: LineCalibration,
    update: dict[str, Any],
    used: dict[str, tuple[str, str]],
    overrides: list[str],
    warnings: list[str],
) -> None:
    v = cfg.airjet.valves
    if cal.mean_latency_ms is None:
        if real_plant(cfg):
            warnings.append(
                "the calibration has no valve timing: airjet.valves.latency_ms is the config's; run 'sorter calibrate timing'"
            )
        return
    mean, per_valve = cal.mean_latency_ms, cal.latency_ms
    spread = (
        f"{len(per_valve)} valve(s) distinct: {min(per_valve.values()):.3f}..{max(per_valve.values()):.3f} ms"
        if per_valve
        else "no valve distinct from the mean"
    )
    mine = {"latency_ms", "latency_per_valve_ms"} & v.model_fields_set
    if mine:
        if "latency_ms" in mine and not _same(mean, v.latency_ms):
            overrides.append(
                f"OVERRIDE airjet.valves.latency_ms: calibration says {mean:.4g}, config says {v.latency_ms:.4g} "
                "(the config wins for every valve; remove the key to use the calibration)"
            )
        if "latency_per_valve_ms" in mine:
            overrides.append(
                "OVERRIDE airjet.valves.latency_per_valve_ms: the config's own per-valve delays replace the calibration's "
                f"({spread})"
            )
        used["airjet.valves.latency_ms"] = (f"{v.latency_ms:.4g} ms", "config (override)")
        return
    valves = v.model_copy(update={"latency_ms": mean, "latency_per_valve_ms": dict(per_valve)})
    update["airjet"] = cfg.airjet.model_copy(update={"valves": valves})
    used["airjet.valves.latency_ms"] = (f"{mean:.4g} ms mean, {spread}", _section_words(cal, "valves"))


def applied_of(cfg: Config) -> Applied | None:
    """What :func:`apply_calibration` did to ``cfg`` (None: it was not applied)."""
    applied = cfg._applied
    return applied if isinstance(applied, Applied) else None
