"""Camera renderer of the virtual line: moving belt, flat objects, blur, light and noise.

Objects are flat polygons on the belt plane projected through the true
:class:`~sorter.geometry.CameraModel` (vertices densified so lens distortion
bends edges), filled with ``cv2.fillPoly`` in z-order, with per-class details
(caps, labels, rims, tape, print, wrinkles) and alpha blending for translucent
film and clear PET. Then, on the whole frame: motion blur along the belt
(speed x exposure, a 1-D box kernel, only when it reaches 2 px), vignetting
times a slowly varying global gain, and sensor noise taken from a precomputed
noise bank at a per-frame offset (never a fresh full-frame random draw).

Cost is dominated by a few full-frame passes of SIMD OpenCV (about 1 ms
each); see ``scripts/bench_render.py``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from sorter.entities import ImageArray
from sorter.geometry import CameraModel
from sorter.sim.scene import VisibleObject, to_cv_points
from sorter.sim.style import RenderStyle
from sorter.sim.texture import BeltBackground

__all__ = ["RenderStyle", "Renderer"]

F64 = npt.NDArray[np.float64]

_SHIFT = 4
_NOISE_BANK_SIGMA = 20.0  # grey levels stored in the bank; scaled per frame to the style's sigma
_NOISE_MARGIN = 61  # bank is larger than the frame by this many pixels (random offsets)


class Renderer:
    """Draws frames of one camera. Thread-safe (one lock around drawing and style changes).

    Args:
        camera: true camera model.
        style: initial look.
        seed: seeds the noise bank, its per-frame offsets and the lighting phases.
    """

    def __init__(self, camera: CameraModel, style: RenderStyle, seed: int) -> None:
        self._camera = camera
        self._seed = int(seed)
        self._lock = threading.Lock()
        self._h, self._w = camera.height_px, camera.width_px
        rng = np.random.default_rng([seed, 21])
        bank = rng.standard_normal((self._h + _NOISE_MARGIN, self._w + _NOISE_MARGIN, 3), dtype=np.float32)
        self._noise = np.clip(128.0 + _NOISE_BANK_SIGMA * bank, 0, 255).astype(np.uint8)
        self._phases = rng.uniform(0.0, 2.0 * math.pi, 2)
        self._background = BeltBackground(camera, style, seed)
        self._style = style
        yy, xx = np.mgrid[0 : self._h, 0 : self._w].astype(np.float32)
        r2 = ((xx - camera.cx) / (self._w / 2.0)) ** 2 + ((yy - camera.cy) / (self._w / 2.0)) ** 2
        self._r2 = np.asarray(r2 / max(float(r2.max()), 1e-9), dtype=np.float32)  # 0 at the centre, 1 in the far corner
        self._vignette = self._make_vignette(style.vignetting)

    # ------------------------------------------------------------------ style
    @property
    def style(self) -> RenderStyle:
        """Current look."""
        return self._style

    def set_style(self, style: RenderStyle) -> None:
        """Change the look (rebuilds the belt texture and vignette maps: a few tens of ms)."""
        with self._lock:
            if style == self._style:
                return
            self._background.set_style(style)
            if style.vignetting != self._style.vignetting:
                self._vignette = self._make_vignette(style.vignetting)
            self._style = style

    def _make_vignette(self, strength: float) -> ImageArray:
        """3-channel uint8 map ``255 * (1 - strength * r^2)``."""
        v = cv2.convertScaleAbs(self._r2, alpha=-255.0 * min(max(strength, 0.0), 1.0), beta=255.0)
        return np.asarray(cv2.merge([v, v, v]), dtype=np.uint8)

    def gain(self, t_s: float) -> float:
        """Global light gain at simulated time ``t_s`` (slow, smooth variation)."""
        st = self._style
        wave = 0.6 * math.sin(2.0 * math.pi * t_s / 5.3 + self._phases[0]) + 0.4 * math.sin(
            2.0 * math.pi * t_s / 1.9 + self._phases[1]
        )
        return st.light_gain * (1.0 + st.lighting_variation * wave)

    # ------------------------------------------------------------------ drawing
    def render(
        self,
        visible: Sequence[VisibleObject],
        *,
        s_mm: float,
        speed_mm_s: float,
        t_s: float,
        frame_index: int,
    ) -> ImageArray:
        """Render one ``HxWx3`` BGR uint8 frame.

        Args:
            visible: objects in the image, in drawing order, with projected footprints.
            s_mm: odometer at exposure (moves the belt texture).
            speed_mm_s: true belt speed (motion blur length).
            t_s: simulated time (lighting).
            frame_index: picks the noise-bank offset.
        """
        with self._lock:
            st = self._style
            img = self._background.frame(s_mm)
            self._draw_objects(img, visible, st)
            blur_px = speed_mm_s * st.exposure_ms * 1e-3 * self._background.rows_per_mm * st.blur_scale
            k = round(blur_px)
            if k >= 2:
                cv2.blur(img, (1, k), dst=img)
            cv2.multiply(img, self._vignette, dst=img, scale=self.gain(t_s) / 255.0)
            if st.noise_sigma > 0:
                h = (frame_index * 7919 + self._seed * 104729) % (_NOISE_MARGIN * _NOISE_MARGIN)
                oy, ox = divmod(h, _NOISE_MARGIN)
                view = self._noise[oy : oy + self._h, ox : ox + self._w]
                beta = st.noise_sigma / _NOISE_BANK_SIGMA
                cv2.addWeighted(img, 1.0, view, beta, -128.0 * beta, dst=img)
            return img

    def _draw_objects(self, img: ImageArray, visible: Sequence[VisibleObject], st: RenderStyle) -> None:
        if not visible:
            return
        line_type = cv2.LINE_AA if st.antialias else cv2.LINE_8
        px_per_mm = self._background.rows_per_mm
        # project every decoration of every object in one call
        deco_pts: list[F64] = []
        for v in visible:
            c = np.array([v.x_mm, v.y_w_mm])
            deco_pts.extend(d.points_mm + c for d in v.spec.decorations)
        fixed = to_cv_points(self._camera.belt_to_pixel(np.concatenate(deco_pts))) if deco_pts else np.zeros((0, 2), np.int32)
        start = 0
        jitter = 255.0 * st.colour_jitter
        for v in visible:
            spec = v.spec
            n = spec.colour_noise
            b = spec.bgr
            colour = (
                min(255.0, max(0.0, b[0] + jitter * n[0])),
                min(255.0, max(0.0, b[1] + jitter * n[1])),
                min(255.0, max(0.0, b[2] + jitter * n[2])),
            )
            decos: list[_Deco] = []
            for d in spec.decorations:
                m = len(d.points_mm)
                decos.append((fixed[start : start + m], d.bgr, d.kind == "fill", max(1, round(d.thickness_mm * px_per_mm))))
                start += m
            if st.specular or st.print_p or st.crease_p:
                decos += _real_details(v, st, colour)
            if spec.alpha >= 0.99:
                _fill(img, v.outline_cv, colour, decos, line_type)
                continue
            x0, y0 = max(int(v.lo_px[0]) - 2, 0), max(int(v.lo_px[1]) - 2, 0)
            x1, y1 = min(int(v.hi_px[0]) + 3, self._w), min(int(v.hi_px[1]) + 3, self._h)
            if x1 <= x0 or y1 <= y0:
                continue
            roi = img[y0:y1, x0:x1]
            layer = roi.copy()
            shift = np.array([x0 << _SHIFT, y0 << _SHIFT], np.int32)
            _fill(layer, v.outline_cv - shift, colour, [(p - shift, c, f, t) for p, c, f, t in decos], line_type)
            cv2.addWeighted(layer, spec.alpha, roi, 1.0 - spec.alpha, 0.0, dst=roi)


_Deco = tuple[npt.NDArray[np.int32], tuple[int, int, int], bool, int]


def _real_details(v: VisibleObject, st: RenderStyle, colour: tuple[float, float, float]) -> list[_Deco]:
    """Look of real objects, drawn inside the outline (so the ground-truth box is unchanged): printed labels
    with text lines, specular highlights along the long axis, creases of crumpled or flattened objects.
    Drawn from the object's id and the style's texture seed, so the same object looks the same in every frame."""
    rng = np.random.default_rng([v.spec.object_id, st.texture_seed, 31])
    pts = v.outline_px
    c = pts.mean(axis=0)
    cov = np.cov((pts - c).T) if len(pts) > 2 else np.eye(2)
    evals, evecs = np.linalg.eigh(cov)
    major, minor = evecs[:, 1], evecs[:, 0]
    a, b = 2.0 * float(np.sqrt(max(evals[1], 1.0))), 2.0 * float(np.sqrt(max(evals[0], 1.0)))
    out: list[_Deco] = []

    def poly(corners: list[tuple[float, float]]) -> npt.NDArray[np.int32]:
        p = np.array([c + u * major + w * minor for u, w in corners])
        return to_cv_points(p)

    if rng.random() < st.print_p and a > 8 and b > 5:
        u0, u1 = sorted(rng.uniform(-0.5, 0.5, 2) * a)
        w0, w1 = -0.6 * b, 0.6 * b
        lo = 150 if rng.random() < 0.6 else 0  # mostly light paper labels, sometimes any colour
        paper = tuple(int(v) for v in rng.integers(lo, 256, 3))
        out.append((poly([(u0, w0), (u1, w0), (u1, w1), (u0, w1)]), paper, True, 1))  # type: ignore[arg-type]
        ink = tuple(int(v) for v in rng.integers(0, 90, 3))
        for k in range(int(rng.integers(1, 5))):
            w = w0 + (k + 1) * (w1 - w0) / 6.0
            out.append((poly([(u0 + 2, w), (u0 + (u1 - u0) * float(rng.uniform(0.4, 0.95)), w)]), ink, False, 1))  # type: ignore[arg-type]
    if st.specular > 0 and (v.spec.alpha < 0.99 or v.spec.class_id in (0, 1, 2)) and a > 6:
        gk = float(st.specular) * float(rng.uniform(0.4, 1.0))
        glint = tuple(int(min(255.0, ch + gk * (255.0 - ch))) for ch in colour)
        off = float(rng.uniform(-0.4, 0.4)) * b
        out.append((poly([(-0.6 * a, off), (0.6 * a, off)]), glint, False, max(1, round(0.15 * b * gk))))  # type: ignore[arg-type]
    if rng.random() < st.crease_p and a > 6:
        dark = tuple(int(max(0.0, ch * 0.6)) for ch in colour)
        for _ in range(int(rng.integers(2, 6))):
            p0 = (float(rng.uniform(-0.7, 0.7)) * a, float(rng.uniform(-0.7, 0.7)) * b)
            p1 = (float(rng.uniform(-0.7, 0.7)) * a, float(rng.uniform(-0.7, 0.7)) * b)
            out.append((poly([p0, p1]), dark, False, 1))  # type: ignore[arg-type]
    return out


def _fill(
    img: ImageArray,
    outline: npt.NDArray[np.int32],
    colour: tuple[float, float, float],
    decos: Sequence[_Deco],
    line_type: int,
) -> None:
    """Fill an outline and draw its decorations (fixed-point int32 points, ``shift`` = 4)."""
    cv2.fillPoly(img, [outline], colour, line_type, _SHIFT)
    for pts, bgr, is_fill, thickness in decos:
        if is_fill:
            cv2.fillPoly(img, [pts], bgr, line_type, _SHIFT)
        else:
            cv2.polylines(img, [pts], False, bgr, thickness, line_type, _SHIFT)


class LazyRenderer:
    """A :class:`Renderer` built at first use (belt texture and lookup tables, about 0.1 s), outside the owner's lock.

    Args:
        camera: the camera model.
        style: the initial render look.
        seed: render seed.
        lock: the owner's lock, held only to read and swap the renderer and the style.
    """

    def __init__(self, camera: CameraModel, style: RenderStyle, seed: int, lock: threading.RLock) -> None:
        self._camera = camera
        self._style = style
        self._seed = seed
        self._lock = lock
        self._renderer: Renderer | None = None

    @property
    def style(self) -> RenderStyle:
        return self._style

    def set_style(self, style: RenderStyle) -> None:
        with self._lock:
            self._style = style
            renderer = self._renderer
        if renderer is not None:
            renderer.set_style(style)

    def get(self) -> Renderer:
        with self._lock:
            renderer, style = self._renderer, self._style
        if renderer is None:
            built = Renderer(self._camera, style, self._seed)
            with self._lock:
                if self._renderer is None:
                    self._renderer = built
                renderer, latest = self._renderer, self._style
            if latest is not style:  # the style changed while it was being built
                renderer.set_style(latest)
        return renderer
