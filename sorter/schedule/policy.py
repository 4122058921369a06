"""What to sort out: target classes, confidence and size limits, touching objects.

Pure functions over :class:`sorter.entities.Track`; the runtime maps the
``policy:`` config section (class names) onto :class:`PolicyParams` (class ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sorter.entities import Track

TouchingPolicy = Literal["eject", "skip", "eject_if_larger"]
TOUCHING_POLICIES: tuple[str, ...] = ("eject", "skip", "eject_if_larger")


@dataclass(frozen=True, slots=True)
class PolicyParams:
    """Which objects are targets.

    Attributes:
        target_class_ids: class ids to sort out.
        min_confidence: minimum ``Track.class_confidence`` of a target.
        min_length_mm: smallest target, by its longest belt-plane extent.
        max_length_mm: largest target, by its longest belt-plane extent
            (larger things jam the chute or cannot be lifted by the air).
        touching_nontarget: what to do with a target touching a non-target:
            ``"eject"`` anyway (purity suffers), ``"skip"`` it (recovery
            suffers), or ``"eject_if_larger"``: eject only when the target's
            footprint is larger than that of every non-target it touches
            (a small neighbour is carried along less often than a large one
            is blown out).
        touching_gap_mm: footprints closer than this (along and across the
            belt) count as touching.
    """

    target_class_ids: frozenset[int] = frozenset({0})
    min_confidence: float = 0.5
    min_length_mm: float = 15.0
    max_length_mm: float = 700.0
    touching_nontarget: TouchingPolicy = "eject"
    touching_gap_mm: float = 5.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.target_class_ids:
            problems.append("PolicyParams.target_class_ids is empty; name at least one class to sort out")
        if not 0.0 <= self.min_confidence <= 1.0:
            problems.append(f"PolicyParams.min_confidence = {self.min_confidence!r} must be within [0, 1]")
        if not 0.0 <= self.min_length_mm < self.max_length_mm:
            problems.append(
                f"PolicyParams.min_length_mm = {self.min_length_mm!r} and max_length_mm = {self.max_length_mm!r} "
                "need 0 <= min < max"
            )
        if self.touching_nontarget not in TOUCHING_POLICIES:
            allowed = ", ".join(TOUCHING_POLICIES)
            problems.append(f"PolicyParams.touching_nontarget = {self.touching_nontarget!r}; use one of {allowed}")
        if self.touching_gap_mm < 0:
            problems.append(f"PolicyParams.touching_gap_mm = {self.touching_gap_mm!r} must be >= 0")
        if problems:
            raise ValueError("; ".join(problems))


def size_mm(track: Track) -> float:
    """Longest belt-plane extent of a track (what the size limits compare against)."""
    return max(track.length_mm, track.width_mm)


def why_not_target(track: Track, policy: PolicyParams) -> str | None:
    """``None`` when the track is a target, else the reason it is not (for the event log)."""
    if track.class_id not in policy.target_class_ids:
        return f"class {track.class_id} is not a target"
    if track.class_confidence < policy.min_confidence:
        return f"class confidence {track.class_confidence:.2f} < {policy.min_confidence:.2f}"
    size = size_mm(track)
    if size < policy.min_length_mm:
        return f"size {size:.0f} mm < min {policy.min_length_mm:.0f} mm"
    if size > policy.max_length_mm:
        return f"size {size:.0f} mm > max {policy.max_length_mm:.0f} mm"
    return None


def touching(target: Track, others: Sequence[Track], s_mm: float, gap_mm: float) -> list[Track]:
    """Tracks in ``others`` whose footprint is within ``gap_mm`` of the target's.

    Footprints are the axis-aligned boxes predicted (with residual motion) at
    odometer ``s_mm``, normally when the target reaches the ejection line.
    """
    if not others:
        return []
    y_t, x_t, _, _ = target.predict(s_mm)
    ds = s_mm - np.array([o.s_ref_mm for o in others])
    y = np.array([o.u_mm for o in others]) + np.array([o.du_per_mm for o in others]) * ds + s_mm
    x = np.array([o.x_mm for o in others]) + np.array([o.dx_per_mm for o in others]) * ds
    gap_y = np.abs(y - y_t) - (np.array([o.length_mm for o in others]) + target.length_mm) / 2.0
    gap_x = np.abs(x - x_t) - (np.array([o.width_mm for o in others]) + target.width_mm) / 2.0
    hit = (gap_y <= gap_mm) & (gap_x <= gap_mm)
    return [o for o, h in zip(others, hit.tolist(), strict=True) if h and o.track_id != target.track_id]


def touching_verdict(target: Track, touching_nontargets: Sequence[Track], policy: PolicyParams) -> str | None:
    """``None`` to go ahead with the target, else why it is skipped because of its neighbours."""
    if not touching_nontargets or policy.touching_nontarget == "eject":
        return None
    ids = ", ".join(str(t.track_id) for t in touching_nontargets)
    if policy.touching_nontarget == "skip":
        return f"touches non-target track(s) {ids}"
    area = target.length_mm * target.width_mm
    biggest = max(touching_nontargets, key=lambda t: t.length_mm * t.width_mm)
    if biggest.length_mm * biggest.width_mm >= area:
        return f"touches non-target track {biggest.track_id} at least as large ({ids})"
    return None
