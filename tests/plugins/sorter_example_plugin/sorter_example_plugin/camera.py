"""``camera.type: example_pattern``: a synthetic overhead camera over a belt carrying bright boxes.

Boxes lie on the belt every ``options.spacing_mm`` (belt-fixed), so they move with the odometer the line gives
the camera; frames come at ``camera.fps`` and are stamped at capture, like a real camera's. The image scale and
where the image centre looks on the belt (``options.px_per_mm``, ``centre_x_mm``, ``centre_y_mm``) must agree
with the line's calibration for the boxes to land where they are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from sorter.entities import Frame


class PatternCamera:
    """A ``FrameSource`` drawing boxes riding the belt."""

    def __init__(self, cfg: Any, clock: Any, odometer: Callable[[int], float] | None, options: Any) -> None:
        o = dict(cfg.options)
        self._w, self._h = cfg.width_px, cfg.height_px
        self._period_ns = round(1e9 / cfg.fps)
        self._clock = clock
        self._odometer = odometer or (lambda _t: 0.0)
        self._px_per_mm = float(o.get("px_per_mm", 0.25))
        self._centre_x_mm = float(o.get("centre_x_mm", 600.0))
        self._centre_y_mm = float(o.get("centre_y_mm", 0.0))
        self._spacing_mm = float(o.get("spacing_mm", 500.0))
        self._box_mm = (float(o.get("box_length_mm", 120.0)), float(o.get("box_width_mm", 80.0)))
        self._realtime = options.realtime
        self._next_ns: int | None = None
        self._index = 0
        self._stop = threading.Event()

    def start(self) -> None:
        self._next_ns = self._clock.now_ns()

    def latest(self, timeout_s: float) -> Frame | None:
        if self._next_ns is None or self._stop.is_set():
            return None
        wait_s = (self._next_ns - self._clock.now_ns()) / 1e9
        if wait_s > timeout_s:
            self._stop.wait(timeout_s)
            return None
        if wait_s > 0 and self._realtime:
            self._stop.wait(wait_s)
        t_ns = max(self._next_ns, self._clock.now_ns())
        self._next_ns += self._period_ns
        frame = Frame(self._draw(self._odometer(t_ns)), t_ns, self._odometer(t_ns), self._index, "example")
        self._index += 1
        return frame

    def _draw(self, s_mm: float) -> Any:
        img = np.full((self._h, self._w, 3), 40, np.uint8)
        k = self._px_per_mm
        half_len, half_wid = self._box_mm[0] / 2.0, self._box_mm[1] / 2.0
        half_view_mm = self._h / 2.0 / k
        first = int((self._centre_y_mm - half_view_mm - half_len - s_mm) // self._spacing_mm)
        for n in range(first, first + int(2 * half_view_mm // self._spacing_mm) + 3):
            y_mm = n * self._spacing_mm + s_mm  # a box at belt-fixed u = n * spacing, now at y = u + s
            y0 = round(self._h / 2.0 + (y_mm - half_len - self._centre_y_mm) * k)
            y1 = round(self._h / 2.0 + (y_mm + half_len - self._centre_y_mm) * k)
            x0 = round(self._w / 2.0 - half_wid * k)
            x1 = round(self._w / 2.0 + half_wid * k)
            # only boxes wholly in the image, like a camera that sees whole objects
            if y0 >= 0 and y1 < self._h:
                img[y0:y1, x0:x1] = 220
        return img

    @property
    def frames_dropped(self) -> int:
        return 0

    def close(self) -> None:
        self._stop.set()


def create(cfg: Any, clock: Any, odometer: Callable[[int], float] | None, options: Any) -> PatternCamera:
    """Factory of the ``sorter.capture`` entry point."""
    return PatternCamera(cfg, clock, odometer, options)
