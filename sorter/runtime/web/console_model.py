"""What the operator console draws, as plain JSON-ready data: the belt map, rates per minute, sorting estimates.

Pure: entity types and numbers in, dicts out. Positions are world millimetres on
the belt plane (``x_mm`` across from the left edge, ``y_mm`` along the travel
from the camera's reference line) at the odometer reading ``s_now_mm``; the page
moves them on with the belt speed between snapshots.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from sorter.entities import MATERIAL_CLASSES, Track
from sorter.runtime.web.shots import Shot


def _r(v: float) -> float:
    return round(float(v), 1) if math.isfinite(v) else 0.0


def belt_tracks(tracks: Iterable[Track], actions: Mapping[int, str], s_now_mm: float) -> list[dict[str, Any]]:
    """Live tracks at ``s_now_mm``: id, class, centre, size, the decision taken (if any) and whether confirmed."""
    out = []
    for t in tracks:
        y, x, _sy, _sx = t.predict(s_now_mm)
        out.append({
            "id": t.track_id, "cls": MATERIAL_CLASSES[t.class_id], "x": _r(x), "y": _r(y),
            "l": _r(t.length_mm), "w": _r(t.width_mm), "action": actions.get(t.track_id, ""), "confirmed": t.confirmed,
        })
    return out


def belt_shots(shots: Iterable[Shot], s_now_mm: float, geometry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Planned shots at ``s_now_mm``, where they sit on the belt now.

    A valve window is the patch of belt that passes the ejection line while the valves are open:
    the belt point at ``y_eject - (s - s_now)`` reaches the line when the odometer reads ``s``. A pick
    is drawn where the gripper will close on the object.
    """
    out: list[dict[str, Any]] = []
    y_eject = float(geometry.get("y_eject_mm", 0.0))
    valves = geometry.get("valves") or {}
    pitch = float(valves.get("pitch_mm", 0.0))
    x_first = float(valves.get("x_first_mm", 0.0))
    for s in shots:
        item: dict[str, Any] = {"id": s.command_id, "track": s.track_id, "cls": MATERIAL_CLASSES[s.class_id],
                                "kind": s.kind, "outcome": s.outcome}
        if s.kind == "fire":
            item.update(
                x0=_r(x_first + pitch * s.valve_first), x1=_r(x_first + pitch * (s.valve_last + 1)),
                y0=_r(y_eject - (s.s_end_mm - s_now_mm)), y1=_r(y_eject - (s.s_start_mm - s_now_mm)),
                y_target=_r(y_eject - (s.s_target_mm - s_now_mm)), valves=[s.valve_first, s.valve_last],
                due_mm=_r(s.s_start_mm - s_now_mm),
            )
        else:
            item.update(x=_r(s.x_mm), y=_r(s.y_pick_mm), due_mm=_r(s.s_start_mm - s_now_mm))
        out.append(item)
    return out


def valves_open(shots: Iterable[Shot], s_now_mm: float, valve_count: int) -> list[int]:
    """Valves whose window (sent, not refused) spans ``s_now_mm``."""
    open_: set[int] = set()
    for s in shots:
        if s.kind == "fire" and s.outcome in ("planned", "accepted", "executed") and s.s_start_mm <= s_now_mm <= s.s_end_mm:
            open_.update(range(max(0, s.valve_first), min(valve_count, s.valve_last + 1)))
    return sorted(open_)


class RateWindow:
    """Per-minute rates of cumulative counters over the last ``window_s`` seconds (or the run so far, if shorter).

    Args:
        window_s: averaging window.
    """

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, dict[str, float]]] = deque()

    def add(self, t_s: float, counts: Mapping[str, float]) -> None:
        """A sample of the cumulative ``counts`` at monotonic time ``t_s``."""
        self._samples.append((t_s, dict(counts)))
        while len(self._samples) > 2 and t_s - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def per_minute(self) -> tuple[dict[str, float], float]:
        """``({key: rate per minute}, span_s)``: the change over the span covered by the samples."""
        if len(self._samples) < 2:
            return {}, 0.0
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        span = t1 - t0
        if span <= 0:
            return {}, 0.0
        return {k: round((v - c0.get(k, 0.0)) * 60.0 / span, 1) for k, v in c1.items()}, round(span, 1)


SIM_METHOD = ("simulated line: scored against the simulator's ground truth (each object's true class, and whether "
              "the air or gripper really moved it)")
REAL_METHOD = ("real line, no ground truth: recovery = executed shots / targets decided (shot, skipped or too late); "
               "purity = mean class confidence of the objects shot at")


def estimates(score: Mapping[str, Any], decisions: Mapping[str, int], executed: int, confidence_sum: float,
              confidence_n: int) -> dict[str, Any]:
    """Recovery and purity with how they were obtained.

    Args:
        score: the simulator's scoreboard summary (empty on a real line).
        decisions: decisions so far by action (``eject``/``pick``, ``skip``, ``late``, ``not_target``).
        executed: commands the controller reported executed.
        confidence_sum: sum of the class confidences of the tracks shot at.
        confidence_n: how many tracks were shot at.
    """
    if score:
        passed = int(score.get("targets_passed", 0))
        return {"recovery": round(float(score.get("recovery", 0.0)), 4) if passed else None,
                "purity": round(float(score.get("purity", 1.0)), 4) if executed or score.get("pulses") else None,
                "targets": passed, "method": SIM_METHOD, "source": "ground truth"}
    decided = sum(int(decisions.get(k, 0)) for k in ("eject", "pick", "skip", "late"))
    return {"recovery": round(min(1.0, executed / decided), 4) if decided else None,
            "purity": round(confidence_sum / confidence_n, 4) if confidence_n else None,
            "targets": decided, "method": REAL_METHOD, "source": "estimate"}
