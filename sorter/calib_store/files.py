"""Calibration files on disk: reading a version, a machine's directory or a standalone section; writing new
versions (never in place) and standalone section files (the old one kept aside)."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from sorter.calib_store.document import FORMAT, SECTIONS, VERSION_RE, Calibration, make_section, parse_utc
from sorter.calib_store.validate import validate_section
from sorter.errors import CalibrationError

log = logging.getLogger(__name__)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CalibrationError(
            f"calibration file '{path}' does not exist; check camera.calibration_file or run 'sorter calibrate'"
        ) from None
    except OSError as e:
        raise CalibrationError(f"calibration file '{path}' cannot be read ({e.strerror}); check its permissions") from None
    except UnicodeDecodeError:
        raise CalibrationError(
            f"calibration file '{path}' is not UTF-8 text; it was not written by 'sorter calibrate': restore it from the store"
        ) from None
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
        try:
            version = int(doc.get("version", 0))
        except (TypeError, ValueError):
            raise CalibrationError(f"calibration file '{p}': version {doc.get('version')!r} is not a number") from None
        previous = doc.get("previous")
        return Calibration(
            machine=str(doc.get("machine", "")),
            version=version,
            created_utc=parse_utc(doc.get("created_utc", "1970-01-01T00:00:00Z")),
            sections=sections,
            path=p,
            previous=None if previous is None else str(previous),
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
    found = [(int(m.group(1)), f) for f in d.iterdir() if (m := VERSION_RE.match(f.name))]
    return [f for _, f in sorted(found)]


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
