"""How much of what the camera captured a recording holds, and whether its gaps leave its scores any meaning (pure).

A recording made on a loaded machine misses frames: the loop dropped them, or
the recorder could not encode them in time. Replayed, such a recording tracks
few objects and scores nothing; worse, an object that passed the camera inside
a gap is never seen at all. So a replay first measures the gaps, from the
stamps themselves (``frames.csv``: frame indices and capture times) and from
what the recorder wrote in ``meta.json``, and then:

* refuses when more than ``max_missing_share`` of the captured frames are
  missing, or when one gap is longer than an object's time in view (an object
  could have crossed the whole view unseen);
* warns on any missing frame, and on gaps longer than ``warn_gap_ms`` (a track
  that sees no detection that long is ended by the tracker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

#: share of missing frames above which a replay is refused by default
DEFAULT_MAX_MISSING_SHARE = 0.10


@dataclass(frozen=True, slots=True)
class Stamp:
    """One recorded frame's capture index, time (ns) and odometer (mm)."""

    frame_index: int
    t_capture_ns: int
    s_capture_mm: float


@dataclass(frozen=True, slots=True)
class GapReport:
    """What a recording misses.

    Attributes:
        frames_recorded: frames in the recording.
        frames_captured: frames the camera captured over the same span (the recorder's count, else estimated from the
            frame indices, else from the capture times).
        frames_missing: captured but not recorded.
        missing_share: ``frames_missing / frames_captured``.
        longest_gap_ms: longest time between two consecutive recorded frames.
        nominal_gap_ms: the camera's frame period.
        speed_mm_s: the belt speed over the recording (from the recorded odometer; 0 when unknown).
        view_time_ms: how long an object stays in view at that speed (0 when unknown).
        refuse: reasons the scores of a replay would be meaningless (empty: replay may run).
        warn: reasons to read the scores with care.
    """

    frames_recorded: int
    frames_captured: int
    frames_missing: int
    missing_share: float
    longest_gap_ms: float
    nominal_gap_ms: float
    speed_mm_s: float
    view_time_ms: float
    refuse: tuple[str, ...] = field(default=())
    warn: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_recorded": self.frames_recorded,
            "frames_captured": self.frames_captured,
            "frames_missing": self.frames_missing,
            "missing_share": round(self.missing_share, 5),
            "longest_gap_ms": round(self.longest_gap_ms, 3),
            "nominal_gap_ms": round(self.nominal_gap_ms, 3),
            "view_time_ms": round(self.view_time_ms, 1),
        }


def _captured(stamps: Sequence[Stamp], fps: float, meta: Mapping[str, Any]) -> int:
    """Frames captured over the recording: the recorder's own count, else the span of indices, else of capture times."""
    n = len(stamps)
    counted = meta.get("frames_captured")
    if isinstance(counted, int) and not isinstance(counted, bool) and counted >= n:
        return counted
    if n < 2:
        return n
    indices = [s.frame_index for s in stamps]
    if all(b > a for a, b in pairwise(indices)):
        return max(n, indices[-1] - indices[0] + 1)
    if fps > 0:
        span_s = (stamps[-1].t_capture_ns - stamps[0].t_capture_ns) / 1e9
        return max(n, round(span_s * fps) + 1)
    return n


def assess_gaps(
    stamps: Sequence[Stamp],
    fps: float,
    meta: Mapping[str, Any],
    *,
    view_length_mm: float,
    max_missing_share: float = DEFAULT_MAX_MISSING_SHARE,
    warn_gap_ms: float | None = None,
) -> GapReport:
    """Measure a recording's gaps and judge them.

    Args:
        stamps: the recorded frames in order.
        fps: the camera rate the recording was made at.
        meta: ``meta.json`` (older recordings lack the counts: the stamps alone are used then).
        view_length_mm: along-belt length of the camera's view (mm).
        max_missing_share: refuse above this share of missing frames.
        warn_gap_ms: warn on gaps longer than this (default: three frame periods).
    """
    n = len(stamps)
    nominal_ms = 1000.0 / fps if fps > 0 else 0.0
    captured = _captured(stamps, fps, meta)
    missing = max(0, captured - n)
    share = missing / captured if captured else 0.0
    gaps = [(b.t_capture_ns - a.t_capture_ns) / 1e6 for a, b in pairwise(stamps)]
    longest = max(gaps, default=0.0)
    speed = 0.0
    if n >= 2 and stamps[-1].t_capture_ns > stamps[0].t_capture_ns:
        speed = (stamps[-1].s_capture_mm - stamps[0].s_capture_mm) / ((stamps[-1].t_capture_ns - stamps[0].t_capture_ns) / 1e9)
    view_ms = view_length_mm / speed * 1000.0 if speed > 0 and view_length_mm > 0 else 0.0
    refuse: list[str] = []
    warn: list[str] = []
    if n == 0:
        refuse.append("it holds no frame")
    if missing and share > max_missing_share:
        refuse.append(f"{missing} of {captured} captured frames are missing ({100 * share:.1f} %, more than the "
                      f"{100 * max_missing_share:g} % allowed)")
    elif missing:
        warn.append(f"{missing} of {captured} captured frames are missing ({100 * share:.1f} %)")
    if view_ms > 0 and longest > view_ms:
        refuse.append(f"a gap of {longest:.0f} ms is longer than an object's time in view ({view_ms:.0f} ms at "
                      f"{speed:.0f} mm/s): objects may have crossed the view unseen")
    else:
        limit = warn_gap_ms if warn_gap_ms is not None else 3 * nominal_ms
        if limit > 0 and longest > limit:
            warn.append(f"the longest gap between frames is {longest:.0f} ms (the camera's period is {nominal_ms:.1f} ms)")
    if meta.get("complete") is False and not (refuse or warn):
        warn.append("the recorder marked it incomplete")
    return GapReport(n, captured, missing, share, longest, nominal_ms, speed, view_ms, tuple(refuse), tuple(warn))
