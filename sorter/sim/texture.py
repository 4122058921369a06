"""Belt-fixed background texture that moves with the odometer.

The texture is a strip of ``period_rows`` image rows, periodic along the belt,
made of grain, soft blotches, longitudinal wear streaks and belt-fixed clutter
(specks, stains, stickers). Each frame picks, for every image row, the texture
row of the belt-fixed coordinate ``u = y_w(row) - s`` seen there, so the
background moves exactly with the belt (per-row scale follows camera tilt; the
small lateral effect of lens distortion is ignored for the background only).
A frame costs one row gather.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from sorter.entities import ImageArray
from sorter.geometry import CameraModel
from sorter.sim.style import RenderStyle

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Texture length along the belt in image rows (about 2 m of belt at 1 px/mm).
PERIOD_ROWS = 2048


class BeltBackground:
    """Moving belt background for one camera.

    The noise fields are drawn once from ``seed``; a style change only
    re-mixes them (weights from ``style.texture_seed``), recolours and redraws
    the clutter, so per-frame style randomisation stays cheap.

    Args:
        camera: the true camera model.
        style: belt colour, texture strength, clutter.
        seed: seed of the noise fields.
        period_rows: texture period along the belt (rows).
    """

    def __init__(self, camera: CameraModel, style: RenderStyle, seed: int = 0, period_rows: int = PERIOD_ROWS) -> None:
        self._h, self._w = camera.height_px, camera.width_px
        self._period = int(period_rows)
        rows = np.arange(self._h, dtype=np.float64)
        centre = np.column_stack([np.full(self._h, camera.cx), rows])
        self._row_y_mm: F64 = camera.pixel_to_belt(centre)[:, 1]
        dy = np.diff(self._row_y_mm)
        self.rows_per_mm = float(1.0 / np.median(np.abs(dy))) if len(dy) else 1.0
        cols = np.column_stack([np.arange(self._w, dtype=np.float64), np.full(self._w, camera.cy)])
        dx = np.diff(camera.pixel_to_belt(cols)[:, 0])
        self.cols_per_mm = float(1.0 / np.median(np.abs(dx))) if len(dx) else 1.0
        self._grain: F32 = np.zeros((0, 0), np.float32)
        self._blotch: F32 = np.zeros((0, 0), np.float32)
        self._texture: ImageArray = np.zeros((0, 0, 3), np.uint8)
        self._make_fields(seed)
        self.set_style(style)

    # ------------------------------------------------------------------ construction
    def _make_fields(self, seed: int) -> None:
        """Unit-amplitude noise fields (the expensive part, done once)."""
        rng = np.random.default_rng([seed, 11])
        p, w = self._period, self._w
        self._grain = rng.standard_normal((p, w), dtype=np.float32)
        # soft blotches: periodic along the belt (integer number of waves per period)
        r = np.arange(p, dtype=np.float32)[:, None]
        blotch = np.zeros((p, w), np.float32)
        for _ in range(4):
            n = int(rng.integers(2, 14))
            coarse = rng.standard_normal((1, max(2, w // 96))).astype(np.float32)
            prof = np.asarray(cv2.resize(coarse, (w, 1), interpolation=cv2.INTER_CUBIC), dtype=np.float32)
            blotch += np.cos(2.0 * math.pi * n * r / p + float(rng.uniform(0, 2 * math.pi))).astype(np.float32) * prof
        streaks = cv2.GaussianBlur(rng.standard_normal((1, w)).astype(np.float32), (0, 0), 2.0)
        self._blotch = np.asarray(0.5 * blotch + 0.3 * streaks / max(float(streaks.std()), 1e-6), dtype=np.float32)

    def set_style(self, style: RenderStyle) -> None:
        """Rebuild the texture for a new style (a few ms: full-frame OpenCV passes plus clutter)."""
        mix = np.random.default_rng([style.texture_seed, 12]).uniform(0.5, 1.2, 2)
        amp = float(style.belt_texture_strength)
        grey = cv2.addWeighted(self._grain, 0.7 * amp * float(mix[0]), self._blotch, amp * float(mix[1]), 0.0)
        channels = [cv2.addWeighted(grey, 1.0, grey, 0.0, float(style.belt_bgr[c]), dtype=cv2.CV_8U) for c in range(3)]
        tex = np.ascontiguousarray(cv2.merge(channels), dtype=np.uint8)
        self._draw_clutter(tex, style)
        if style.wear > 0:
            self._draw_wear(tex, style)
        if style.debris_per_m2 > 0:
            self._draw_debris(tex, style)
        self._texture = tex

    def _draw_wear(self, tex: ImageArray, style: RenderStyle) -> None:
        """A worn, dirty belt: dark streaks along the belt (grooves, oil), light scuffs and grime patches."""
        rng = np.random.default_rng([style.texture_seed, 14])
        p, w = tex.shape[:2]
        shade = np.zeros((p, w), np.float32)
        for _ in range(int(rng.integers(3, 14))):  # longitudinal streaks: constant along the belt, a few px wide
            x = int(rng.integers(0, w))
            width = int(rng.integers(1, 12))
            shade[:, max(0, x - width) : x + width] -= float(rng.uniform(6, 30))
        for _ in range(int(rng.integers(0, 6))):  # light scuffs
            x = int(rng.integers(0, w))
            shade[:, max(0, x - 1) : x + 2] += float(rng.uniform(5, 18))
        grime = cv2.GaussianBlur(rng.standard_normal((p // 16 + 1, w // 16 + 1)).astype(np.float32), (0, 0), 1.5)
        grime = cv2.resize(grime, (w, p), interpolation=cv2.INTER_CUBIC)
        shade += np.asarray(grime, np.float32) * np.float32(10.0 / max(float(np.std(grime)), 1e-6))
        shade *= float(style.wear)
        for c in range(3):
            tex[:, :, c] = np.clip(tex[:, :, c].astype(np.float32) + shade, 0, 255).astype(np.uint8)

    def _draw_debris(self, tex: ImageArray, style: RenderStyle) -> None:
        """Belt-fixed debris: shreds of paper and film, plastic fragments, grit (object-like, not objects)."""
        rng = np.random.default_rng([style.texture_seed, 15])
        area_m2 = (self._period / self.rows_per_mm) * (self._w / self.cols_per_mm) / 1e6
        px_per_mm = 0.5 * (self.rows_per_mm + self.cols_per_mm)
        for _ in range(int(rng.poisson(style.debris_per_m2 * area_m2))):
            cx, cy = int(rng.integers(self._w)), int(rng.integers(self._period))
            size_px = max(2.0, float(rng.uniform(3.0, 35.0)) * px_per_mm)
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            r = size_px * rng.uniform(0.3, 1.0, n)
            pts = np.stack([cx + r * np.cos(ang), cy + 0.5 * r * np.sin(ang)], 1).astype(np.int32)
            colour = tuple(int(v) for v in rng.integers(0, 256, 3)) if rng.random() < 0.5 else (int(rng.integers(150, 250)),) * 3
            for dy in (0, -self._period, self._period):
                cv2.fillPoly(tex, [pts + np.array([0, dy], np.int32)], colour)

    def _draw_clutter(self, tex: ImageArray, style: RenderStyle) -> None:
        """Belt-fixed distractors: dark specks, stains and small stickers (drawn with wrap-around)."""
        rng = np.random.default_rng([style.texture_seed, 13])
        area_m2 = (self._period / self.rows_per_mm) * (self._w / self.cols_per_mm) / 1e6
        n = int(rng.poisson(style.clutter_per_m2 * area_m2))
        base = np.asarray(style.belt_bgr, dtype=np.int64)
        for _ in range(n):
            kind = rng.random()
            cx, cy = int(rng.integers(self._w)), int(rng.integers(self._period))
            if kind < 0.6:  # speck
                colour = np.clip(base - rng.integers(20, 45), 0, 255)
                shapes = [("circle", int(rng.integers(1, 5)), (0, 0))]
            elif kind < 0.9:  # stain
                colour = np.clip(base + rng.integers(-22, 15), 0, 255)
                shapes = [("ellipse", int(rng.integers(8, 40)), (int(rng.integers(5, 30)), int(rng.integers(0, 180))))]
            else:  # sticker / label scrap
                colour = np.clip(base + rng.integers(10, 120, 3), 0, 255)
                shapes = [("rect", int(rng.integers(4, 14)), (int(rng.integers(3, 10)), 0))]
            bgr = (int(colour[0]), int(colour[1]), int(colour[2]))
            for dy in (0, -self._period, self._period):
                for kind_name, size, extra in shapes:
                    y = cy + dy
                    if kind_name == "circle":
                        cv2.circle(tex, (cx, y), size, bgr, -1)
                    elif kind_name == "ellipse":
                        cv2.ellipse(tex, (cx, y), (size, extra[0]), extra[1], 0, 360, bgr, -1)
                    else:
                        cv2.rectangle(tex, (cx - size, y - extra[0]), (cx + size, y + extra[0]), bgr, -1)

    # ------------------------------------------------------------------ per frame
    def frame(self, s_mm: float) -> ImageArray:
        """A new writable ``HxWx3`` background for odometer ``s_mm``."""
        u = self._row_y_mm - s_mm
        idx = np.floor(u * self.rows_per_mm).astype(np.int64) % self._period
        return np.take(self._texture, idx, axis=0)
