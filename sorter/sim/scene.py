"""Which objects a frame sees, their projected footprints and their ground truth.

Pure numpy + OpenCV drawing on a small label image (for occlusion); no pixels
of the real frame are needed, so truth costs almost nothing when a frame is
not rendered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from sorter.entities import Frame, TruthObject
from sorter.geometry import CameraModel
from sorter.sim.objects import ObjectSpec

F64 = npt.NDArray[np.float64]

_SHIFT = 4  # fractional bits of cv2 polygon coordinates
_OCCLUSION_BITS = 2
#: Objects less opaque than this do not occlude those under them (film, clear PET).
TRANSLUCENT_ALPHA = 0.7

#: Downscale of the label image used to estimate occlusion (visible_fraction).
OCCLUSION_SCALE = 1 << _OCCLUSION_BITS


@dataclass(frozen=True, slots=True)
class VisibleObject:
    """An object at least partly inside the image.

    Attributes:
        spec: the object.
        x_mm: lateral centre at exposure.
        y_w_mm: along-belt centre at exposure.
        outline_px: ``(N, 2)`` projected (distorted) footprint in image pixels, unclipped.
        outline_cv: the same as fixed-point int32 for ``cv2.fillPoly(..., shift=4)``.
        lo_px: ``(x, y)`` minimum of ``outline_px``.
        hi_px: ``(x, y)`` maximum of ``outline_px``.
    """

    spec: ObjectSpec
    x_mm: float
    y_w_mm: float
    outline_px: F64
    outline_cv: npt.NDArray[np.int32]
    lo_px: tuple[float, float]
    hi_px: tuple[float, float]


def to_cv_points(points_px: F64) -> npt.NDArray[np.int32]:
    """Pixel coordinates to the fixed-point int32 form ``cv2.fillPoly(..., shift=4)`` expects."""
    return np.round(points_px * (1 << _SHIFT)).astype(np.int32)


def find_visible(
    camera: CameraModel,
    view_mm: tuple[float, float, float, float],
    specs: Sequence[ObjectSpec],
    x_mm: F64,
    y_w_mm: F64,
) -> list[VisibleObject]:
    """Objects whose projected footprint intersects the image, in drawing order (lowest ``z`` first).

    Args:
        camera: true camera model.
        view_mm: ``(x_min, x_max, y_min, y_max)`` belt-plane extent of the image.
        specs: objects on the belt.
        x_mm: their lateral centres at exposure.
        y_w_mm: their along-belt centres at exposure.
    """
    if not specs:
        return []
    x0, x1, y0, y1 = view_mm
    hw = np.array([s.half_width_mm for s in specs])
    hl = np.array([s.half_length_mm for s in specs])
    near = (x_mm + hw > x0) & (x_mm - hw < x1) & (y_w_mm + hl > y0) & (y_w_mm - hl < y1)
    idx = [int(i) for i in np.flatnonzero(near)]
    if not idx:
        return []
    polys = [specs[i].footprint_mm + np.array([x_mm[i], y_w_mm[i]]) for i in idx]
    counts = [len(p) for p in polys]
    px = camera.belt_to_pixel(np.concatenate(polys))
    fixed = to_cv_points(px)
    ends = np.cumsum(counts)
    starts = ends - np.asarray(counts)
    lo = np.minimum.reduceat(px, starts, axis=0)
    hi = np.maximum.reduceat(px, starts, axis=0)
    w, h = camera.width_px, camera.height_px
    inside = (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] <= w - 1) & (lo[:, 1] <= h - 1)
    out = [
        VisibleObject(
            specs[i],
            float(x_mm[i]),
            float(y_w_mm[i]),
            px[a:b],
            fixed[a:b],
            (float(lo[k, 0]), float(lo[k, 1])),
            (float(hi[k, 0]), float(hi[k, 1])),
        )
        for k, (i, a, b) in enumerate(zip(idx, starts, ends, strict=True))
        if inside[k]
    ]
    out.sort(key=lambda v: v.spec.z)
    return out


def truth_of(camera: CameraModel, visible: Sequence[VisibleObject]) -> tuple[TruthObject, ...]:
    """Ground truth of the visible objects.

    ``box_px`` is the bounding box of the projected footprint clipped to the
    image; ``visible_fraction`` is estimated on a label image downscaled by
    :data:`OCCLUSION_SCALE` where objects are drawn in z-order, so it accounts
    for clipping and for occlusion by opaque objects lying on top (translucent
    ones, alpha below :data:`TRANSLUCENT_ALPHA`, hide nothing).
    """
    if not visible:
        return ()
    w, h = camera.width_px, camera.height_px
    sc = OCCLUSION_SCALE
    labels = np.zeros(((h + sc - 1) // sc, (w + sc - 1) // sc), np.uint16)
    # Translucent objects (film, clear bottles) do not hide what lies under them from the
    # camera: label them first, so only opaque objects occlude (in z-order).
    order = sorted(range(len(visible)), key=lambda k: visible[k].spec.alpha >= TRANSLUCENT_ALPHA)
    for k in order:
        v = visible[k]
        cv2.fillPoly(labels, [v.outline_cv], k + 1, cv2.LINE_8, _SHIFT + _OCCLUSION_BITS)  # more fractional bits = downscale
    counts = np.bincount(labels.ravel(), minlength=len(visible) + 1)
    out: list[TruthObject] = []
    for k, v in enumerate(visible):
        box = (
            min(max(v.lo_px[0], 0.0), w - 1.0),
            min(max(v.lo_px[1], 0.0), h - 1.0),
            min(max(v.hi_px[0], 0.0), w - 1.0),
            min(max(v.hi_px[1], 0.0), h - 1.0),
        )
        full = abs(float(cv2.contourArea(v.outline_px.astype(np.float32)))) / (sc * sc)
        frac = min(1.0, float(counts[k + 1]) / full) if full > 0.5 else 0.0
        out.append(
            TruthObject(
                object_id=v.spec.object_id,
                class_id=v.spec.class_id,
                box_px=box,
                x_mm=v.x_mm,
                y_w_mm=v.y_w_mm,
                length_mm=2.0 * v.spec.half_length_mm,
                width_mm=2.0 * v.spec.half_width_mm,
                visible_fraction=frac,
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Exposure:
    """A camera exposure whose pixels are not drawn yet (``SimWorld.expose``)."""

    frame: Frame
    visible: list[VisibleObject]
    s_mm: float
    speed_mm_s: float
    t_s: float
