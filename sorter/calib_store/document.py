"""One calibration version in memory: sections, dates, the file format's name (pure: no file access)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sorter import __version__
from sorter.errors import CalibrationError, ConfigError

FORMAT = "sorter-calibration/1"
SECTIONS: tuple[str, ...] = ("intrinsics", "belt", "encoder", "valves")
DEFAULT_MAX_AGE_DAYS = 180.0
VERSION_RE = re.compile(r"^v(\d{4,})_(\d{8}T\d{6}Z)\.yaml$")
LENS_KEYS = ("width_px", "height_px", "fx", "fy", "cx", "cy", "dist")
#: where a section's numbers came from: the line itself, the simulated line, or a controller emulator
PROVENANCES: tuple[str, ...] = ("measured", "simulator", "emulator")


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
            raise CalibrationError(f"{where} has no '{kind}' calibration; run 'sorter calibrate {command_of(kind)}' first")
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


def command_of(kind: str) -> str:
    return {"intrinsics": "intrinsics", "belt": "belt", "encoder": "speed", "valves": "timing"}.get(kind, kind)


def make_section(kind: str, body: dict[str, Any], now_utc: datetime, version: int = 0) -> dict[str, Any]:
    """Wrap a step's result with its header (kind, date, version, software version)."""
    if kind not in SECTIONS:
        raise ValueError(f"unknown calibration section {kind!r}; known: {', '.join(SECTIONS)}")
    return {"kind": kind, "created_utc": utc_stamp(now_utc), "version": version, "sorter_version": __version__, **body}
