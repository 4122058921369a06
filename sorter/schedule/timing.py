"""Odometer arithmetic of ejection: when an object reaches a line, air windows, valves.

Everything is in odometer millimetres (``s_mm``), never in time: a controller
that counts encoder pulses switches exactly at these positions whatever the
belt speed does. Time enters only through the belt speed used to convert the
valve latency into a lead and the pulse limits into lengths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sorter.entities import Track, TrackColumns

#: residual motion is clamped so that an object never appears to stand still or move backwards
_MIN_REL_SPEED = 0.5


def s_crossing(track: Track, y_mm: float) -> float:
    """Odometer at which the track's predicted centre crosses world ``y_mm``.

    Solves ``u + du * (s - s_ref) + s = y`` (residual motion included).
    """
    rel = rel_speed(track)
    return (y_mm - track.u_mm + (rel - 1.0) * track.s_ref_mm) / rel


def y_at(track: Track, s_mm: float) -> float:
    """Predicted world ``y_w_mm`` of the centre at odometer ``s_mm`` (``Track.predict`` without the sigmas)."""
    return track.u_mm + track.du_per_mm * (s_mm - track.s_ref_mm) + s_mm


def rel_speed(track: Track) -> float:
    """World mm the object moves per mm of belt travel (1 plus its residual motion)."""
    return max(1.0 + track.du_per_mm, _MIN_REL_SPEED)


def decision_due(
    track: Track, retired: bool, s_now_mm: float, view_end_y_mm: float, line_y_mm: float, decide_before_mm: float
) -> bool:
    """Whether no further measurement can improve the decision on ``track``.

    True once the track is retired, or its predicted centre has left the
    camera view (``view_end_y_mm``), or it is within ``decide_before_mm`` of
    the line where it is acted upon, whichever comes first.
    """
    if retired:
        return True
    y_now = y_at(track, s_now_mm)
    return y_now > view_end_y_mm or line_y_mm - y_now <= decide_before_mm


def maybe_due(
    tracks: TrackColumns, s_now_mm: float, view_end_y_mm: float, line_y_mm: float, decide_before_mm: float
) -> tuple[list[int], list[int]]:
    """Columns and ids of the confirmed tracks for which :func:`decision_due` may hold (live ones), in column order.

    The same test on whole columns with 1 mm to spare, so that no rounding
    ever leaves a due track out: the caller applies :func:`decision_due` to
    each track found.
    """
    y_now = tracks.u_mm + tracks.du_per_mm * (s_now_mm - tracks.s_ref_mm) + s_now_mm
    near = y_now > min(view_end_y_mm, line_y_mm - decide_before_mm) - 1.0
    near &= tracks.confirmed
    due = near.nonzero()[0]
    columns: list[int] = due.tolist()
    ids: list[int] = tracks.track_id.take(due).tolist()
    return columns, ids


@dataclass(frozen=True, slots=True)
class ValveBank:
    """A row of valves across the belt.

    Attributes:
        count: number of valves.
        pitch_mm: lateral width of each valve's air curtain.
        x_first_mm: left edge of valve 0's air, in belt ``x_mm``.
    """

    count: int
    pitch_mm: float
    x_first_mm: float

    def valves_covering(self, x_lo_mm: float, x_hi_mm: float) -> tuple[int, int] | None:
        """Valves whose air overlaps ``(x_lo_mm, x_hi_mm)``, clipped to the bank.

        Returns:
            ``(first, last)`` inclusive, or ``None`` when the span misses the bank.
        """
        eps = 1e-9  # a span ending exactly on a valve edge does not take the next valve
        first = math.floor((x_lo_mm - self.x_first_mm) / self.pitch_mm + eps)
        last = math.ceil((x_hi_mm - self.x_first_mm) / self.pitch_mm - eps) - 1
        first = max(first, 0)
        last = min(last, self.count - 1)
        if first > last:
            return None
        return first, last


@dataclass(frozen=True, slots=True)
class AirWindow:
    """Where the air must blow, in odometer positions.

    Attributes:
        s_target_mm: the object's centre on the ejection line.
        s_open_mm: air on (already clamped).
        s_close_mm: air off (already clamped).
        clamped: ``"min"``/``"max"`` when a pulse limit changed the span, else ``""``.
    """

    s_target_mm: float
    s_open_mm: float
    s_close_mm: float
    clamped: str


def air_window(
    track: Track,
    y_line_mm: float,
    margin_mm: float,
    sigma_k: float,
    speed_mm_s: float,
    min_pulse_ms: float,
    max_pulse_ms: float,
) -> AirWindow:
    """Air-on span for a track crossing the line at ``y_line_mm``.

    The object passes the line from ``s_target - h`` to ``s_target + h`` with
    ``h = (length/2 + margin + sigma_k * sigma_y) / rel_speed``, where
    ``sigma_y`` is the along-belt uncertainty predicted at ``s_target``. The
    span is then clamped to ``[min_pulse_ms, max_pulse_ms] x speed`` around
    ``s_target`` (a belt at standstill gives no time scale: no clamping).
    """
    s_target = s_crossing(track, y_line_mm)
    sigma_y = track.predict(s_target)[2]
    half = (track.length_mm / 2.0 + margin_mm + sigma_k * sigma_y) / rel_speed(track)
    clamped = ""
    if speed_mm_s > 0.0:
        min_half = min_pulse_ms * speed_mm_s / 2000.0
        max_half = max_pulse_ms * speed_mm_s / 2000.0
        if half < min_half:
            half, clamped = min_half, "min"
        elif half > max_half:
            half, clamped = max_half, "max"
    return AirWindow(s_target_mm=s_target, s_open_mm=s_target - half, s_close_mm=s_target + half, clamped=clamped)


def lead_mm(speed_mm_s: float, latency_ms: float) -> float:
    """Belt travel during the valve latency: commands are issued this much earlier than the air."""
    return max(speed_mm_s, 0.0) * latency_ms / 1000.0
