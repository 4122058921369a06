"""The line-side half of the console: what the main loop hands over each cycle, and the snapshots built from it.

The main loop calls :meth:`LiveView.on_cycle` (a few appends) and the actuator's
reports reach :meth:`LiveView.on_reports`; everything heavier (the belt map, rates,
drawing and encoding the live image) runs on the web publisher's thread a few times
per second, reading copies.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sorter.entities import MATERIAL_CLASSES, CommandReport, ImageArray
from sorter.runtime.web.console_model import RateWindow, belt_shots, belt_tracks, estimates, valves_open
from sorter.runtime.web.shots import ShotBook

if TYPE_CHECKING:
    from sorter.runtime.line import Line
    from sorter.runtime.pipeline import CycleResult


def belt_geometry(line: Line) -> dict[str, Any]:
    """The fixed layout the belt map is drawn on: belt width, camera view, ejection line or pick window, valves."""
    cfg = line.cfg
    x0, x1, y0, y1 = line.camera.view_extent_mm()
    geo: dict[str, Any] = {
        "mode": cfg.line.mode, "belt_width_mm": cfg.belt.width_mm,
        "view": {"x0": round(x0, 1), "x1": round(x1, 1), "y0": round(y0, 1), "y1": round(y1, 1)},
        "classes": list(MATERIAL_CLASSES), "targets": list(cfg.policy.targets), "actuator": cfg.actuator.type,
        "renders_pixels": bool(getattr(line, "render_frames", True) or getattr(line, "source", None) is not None),
    }
    if cfg.line.mode == "airjet":
        v = cfg.airjet.valves
        geo["y_eject_mm"] = cfg.airjet.y_eject_mm
        geo["valves"] = {"count": v.count, "pitch_mm": v.pitch_mm, "x_first_mm": v.x_first_mm}
        geo["y_end_mm"] = cfg.airjet.y_eject_mm + 300.0
    else:
        r = cfg.robot
        geo["robot"] = {"y0": r.window_y_start_mm, "y1": r.window_y_end_mm, "x0": r.x_min_mm, "x1": r.x_max_mm}
        geo["y_end_mm"] = r.window_y_end_mm + 200.0
    geo["y_start_mm"] = min(0.0, y0)
    return geo


class LiveView:
    """Shots, rates and estimates of one running line, for the console."""

    def __init__(self, line: Line) -> None:
        self.line = line
        self._geometry: dict[str, Any] | None = None
        self._view_extent: tuple[float, float, float, float] | None = None
        self.shots = ShotBook()
        self.class_rates = RateWindow(60.0)
        self.valve_rates = RateWindow(60.0)
        self.last: CycleResult | None = None
        self.t_last_cycle_s: float | None = None
        self._confidence_sum = 0.0
        self._confidence_n = 0

    @property
    def geometry(self) -> dict[str, Any]:
        """The belt map's layout (worked out on first use, on the publisher's thread)."""
        if self._geometry is None:
            self._geometry = belt_geometry(self.line)
        return self._geometry

    # --- main loop ----------------------------------------------------------------------------------------------
    def on_cycle(self, result: CycleResult, held: bool) -> None:
        """A processed frame: remember its shots (``held`` while actuation is paused) and the confidence of what is shot."""
        self.last = result
        self.t_last_cycle_s = time.monotonic()
        if result.commands:
            self.shots.add(result.commands, held)
        for d in result.decisions:
            if d.action in ("eject", "pick"):
                self._confidence_sum += float(d.class_confidence)
                self._confidence_n += 1

    def on_reports(self, reports: Iterable[CommandReport]) -> None:
        self.shots.on_reports(reports)

    # --- web publisher ------------------------------------------------------------------------------------------
    def console(self, status: Mapping[str, Any], actions: Mapping[int, str], now_s: float) -> dict[str, Any]:
        """The console's data at monotonic time ``now_s``: belt map, valve activity, rates, estimates (plus ``status``)."""
        line = self.line
        last = self.last
        belt: dict[str, Any] = {"tracks": [], "shots": [], "s_now_mm": 0.0, "speed_mm_s": 0.0}
        valve_fires, outcomes = self.shots.counts(int((self.geometry.get("valves") or {}).get("count", 0)))
        open_now: list[int] = []
        if last is not None:
            s_now = float(last.s_now_mm)
            shots = self.shots.visible(s_now)
            belt = {"tracks": belt_tracks(last.active, actions, s_now), "shots": belt_shots(shots, s_now, self.geometry),
                    "s_now_mm": round(s_now, 1), "speed_mm_s": round(float(last.speed_mm_s), 1)}
            open_now = valves_open(shots, s_now, len(valve_fires))
        c = line.counters
        self.class_rates.add(now_s, {**dict(c.objects_by_class), "all": float(sum(c.objects_by_class.values()))})
        self.valve_rates.add(now_s, {str(i): float(n) for i, n in enumerate(valve_fires)})
        per_min, span_s = self.class_rates.per_minute()
        valve_per_min, _ = self.valve_rates.per_minute()
        age = None if self.t_last_cycle_s is None else round(now_s - self.t_last_cycle_s, 2)
        return {
            "status": dict(status),
            "geometry": self.geometry,
            "belt": belt,
            "frame_age_s": age,
            "valves": {"fires": valve_fires, "per_min": [valve_per_min.get(str(i), 0.0) for i in range(len(valve_fires))],
                       "open": open_now},
            "outcomes": outcomes,
            "rates": {"per_min": per_min, "span_s": span_s},
            "estimates": estimates(status.get("score") or {}, c.decisions, c.commands_executed, self._confidence_sum,
                                   self._confidence_n),
        }

    def frame_parts(self, banner: str, actions: Mapping[int, str]) -> tuple[ImageArray, dict[str, Any], int] | None:
        """The last processed frame and what to draw on it: ``(image, overlay items, frame index)`` (None: no pixels).

        Only projections here; drawing and JPEG encoding are left to the web process.
        """
        last = self.last
        if last is None or last.frame.image.size == 0:
            return None
        from sorter.runtime.overlay import overlay_items

        cfg = self.line.cfg
        if self._view_extent is None:
            self._view_extent = self.line.camera.view_extent_mm()
        y_eject = cfg.airjet.y_eject_mm if cfg.line.mode == "airjet" else None
        items = overlay_items(self.line.camera, last.detections, last.active, last.frame.s_capture_mm, actions, y_eject,
                              banner, self._view_extent)
        return last.frame.image, items, int(last.frame.frame_index)
