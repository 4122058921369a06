"""Checks shared by every label import: classes, boxes inside the image, duplicates, frames without labels.

An import gathers every problem before it stops, so one run shows the whole
list; :class:`LabelImportError` carries them (the command prints the first
few dozen with the total).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from sorter.errors import ConfigError
from sorter.train.data.batch import Box
from sorter.train.data.classmap import ClassMap

#: Boxes may overshoot the image by this many pixels (rounding in labelling tools); they are clipped.
EDGE_TOLERANCE_PX = 1.0
Empty = Literal["refuse", "negative", "skip"]


class LabelImportError(ConfigError):
    """Labels that cannot be imported; ``problems`` lists each (file, annotation, value, fix)."""


@dataclass
class ImportReport:
    """What an import did: counts and the problems found."""

    images: int = 0
    boxes: int = 0
    negatives: int = 0
    skipped_empty: int = 0
    ignored_classes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def raise_if_problems(self, source: str) -> None:
        if self.problems:
            raise LabelImportError([f"{source}: {p}" for p in self.problems])

    def summary(self) -> str:
        parts = [f"{self.images} images", f"{self.boxes} boxes"]
        if self.negatives:
            parts.append(f"{self.negatives} empty frames taken as negatives")
        if self.skipped_empty:
            parts.append(f"{self.skipped_empty} frames without labels skipped")
        if self.ignored_classes:
            parts.append("dropped classes " + ", ".join(f"{k} ({v})" for k, v in sorted(self.ignored_classes.items())))
        return ", ".join(parts)


def check_box(
    box: tuple[float, float, float, float], width_px: int, height_px: int, where: str, report: ImportReport
) -> tuple[float, float, float, float] | None:
    """The box clipped to the image if it overshoots by at most :data:`EDGE_TOLERANCE_PX`; else a problem and None."""
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        report.problems.append(f"{where}: box {list(box)} has no area; delete it in the labelling tool")
        return None
    t = EDGE_TOLERANCE_PX
    if x1 < -t or y1 < -t or x2 > width_px + t or y2 > height_px + t:
        report.problems.append(
            f"{where}: box {[round(v, 2) for v in box]} lies outside the {width_px}x{height_px} image; "
            "redraw it inside the frame (or check that the image size in the export is right)"
        )
        return None
    return (max(0.0, x1), max(0.0, y1), min(float(width_px), x2), min(float(height_px), y2))


def map_boxes(
    raw: Sequence[tuple[tuple[float, float, float, float], str, dict[str, str]]],
    width_px: int,
    height_px: int,
    class_map: ClassMap,
    where: str,
    report: ImportReport,
) -> list[Box]:
    """Validated, mapped boxes of one image (unknown classes must already have been checked)."""
    out = []
    for k, (box, name, attrs) in enumerate(raw):
        target = class_map.lookup(name)
        if target is None:
            report.ignored_classes[name] += 1
            continue
        clipped = check_box(box, width_px, height_px, f"{where} box {k} ({name})", report)
        if clipped is not None:
            out.append(Box(clipped, target, attrs=attrs))
    return out


def check_duplicates(keys: Sequence[str], what: str, report: ImportReport) -> None:
    """A problem for every key seen more than once (file names, image ids, content hashes)."""
    for key, n in Counter(keys).items():
        if n > 1:
            report.problems.append(f"{what} {key!r} appears {n} times; keep one copy of each image")


def empty_frame(name: str, empty: Empty, report: ImportReport) -> bool:
    """Handle a frame without labels; returns True when it is kept as a negative."""
    if empty == "negative":
        report.negatives += 1
        return True
    if empty == "skip":
        report.skipped_empty += 1
        return False
    report.problems.append(
        f"image {name!r} has no labels; label it, or pass --empty negative (it shows bare belt) or --empty skip (not done yet)"
    )
    return False
