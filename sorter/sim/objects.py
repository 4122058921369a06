"""Simulated objects: placement on the belt, residual motion, Poisson arrivals.

An object is a flat polygon lying on the belt. Its centre (the centre of its
axis-aligned footprint box in the belt frame, which is what a detector's box
measures) is at::

    y_w(t) = u_mm + s(t) + dy(t - t_birth)
    x(t)   = clamp(x_mm + dx(t - t_birth))

where ``dy``/``dx`` is the residual displacement of objects that slide or roll
on the belt: a slowly varying residual velocity ``v0 + a * sin(w * tau)``
(mm/s), integrated in closed form, so the true position is known at any time.

Arrivals are generated lazily along the belt-fixed coordinate: centres form a
Poisson process with ``density_per_m2 * belt_width`` objects per metre of belt.
Each object is drawn from its own generator seeded by ``(seed, index)``, so the
stream is identical whatever the call pattern of the world.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from sorter.sim.shapes import SHAPES, Decoration, Shape

F64 = npt.NDArray[np.float64]

#: Longest polygon edge kept (mm): edges are split so lens distortion bends them.
MAX_EDGE_MM = 20.0
#: Target number of footprint sample points (air-jet coverage, robot tests).
SAMPLES_PER_OBJECT = 96


@dataclass(frozen=True, slots=True)
class ResidualMotion:
    """Residual velocity of an object relative to the belt: ``v0 + a * sin(w * tau)`` per axis (mm/s)."""

    vx0_mm_s: float = 0.0
    ax_mm_s: float = 0.0
    vy0_mm_s: float = 0.0
    ay_mm_s: float = 0.0
    omega_rad_s: float = 1.0


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """Immutable description of one object: footprint, look and motion.

    Attributes:
        object_id: unique id (assigned by the world when the object appears).
        class_id: index into the world's class names.
        u_mm: belt-fixed along-belt centre (``y_w`` if the odometer read 0 and it never slid).
        x_mm: lateral centre when it appears.
        footprint_mm: ``(N, 2)`` closed polygon ``(x, y)`` relative to the centre, belt frame (rotated).
        samples_mm: ``(K, 2)`` points evenly covering the footprint, relative to the centre.
        half_width_mm: half the lateral extent of the footprint.
        half_length_mm: half the along-belt extent.
        area_mm2: footprint area.
        decorations: details (already rotated into the belt frame).
        bgr: fill colour.
        alpha: opacity.
        z: drawing order (higher is on top).
        colour_noise: per-object ``[-1, 1]`` offsets scaled by the render style's colour jitter.
        motion: residual motion relative to the belt.
    """

    object_id: int
    class_id: int
    u_mm: float
    x_mm: float
    footprint_mm: F64
    samples_mm: F64
    half_width_mm: float
    half_length_mm: float
    area_mm2: float
    decorations: tuple[Decoration, ...]
    bgr: tuple[int, int, int]
    alpha: float
    z: float
    colour_noise: tuple[float, float, float]
    motion: ResidualMotion


# ---------------------------------------------------------------------- geometry helpers


def densify(points: F64, max_edge_mm: float, closed: bool) -> F64:
    """Split polygon edges longer than ``max_edge_mm`` into equal parts."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 2:
        return pts
    nxt = np.roll(pts, -1, axis=0) if closed else pts[1:]
    cur = pts if closed else pts[:-1]
    d = nxt - cur
    n = np.maximum(1, np.ceil(np.hypot(d[:, 0], d[:, 1]) / max_edge_mm)).astype(np.int64)
    seg = np.repeat(np.arange(len(cur)), n)
    first = np.repeat(np.cumsum(n) - n, n)
    f = (np.arange(int(n.sum())) - first) / np.repeat(n, n)
    out = cur[seg] + f[:, None] * d[seg]
    return out if closed else np.concatenate([out, pts[-1:]])


def polygon_area(poly: F64) -> float:
    """Absolute area of a simple polygon (shoelace)."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def points_in_polygon(points: F64, poly: F64) -> npt.NDArray[np.bool_]:
    """Even-odd rule point-in-polygon test, vectorised over ``points`` ``(M, 2)``."""
    x = points[:, 0:1]
    y = points[:, 1:2]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    dy = np.where(y1 == y0, 1e-12, y1 - y0)
    x_int = x0 + (y - y0) * (x1 - x0) / dy
    return np.asarray((np.count_nonzero(crosses & (x < x_int), axis=1) % 2) == 1)


def footprint_samples(poly: F64, target: int = SAMPLES_PER_OBJECT) -> F64:
    """Grid points inside ``poly``, about ``target`` of them, each standing for an equal area."""
    lo = poly.min(axis=0)
    hi = poly.max(axis=0)
    area = max(polygon_area(poly), 1e-6)
    step = math.sqrt(area / target)
    for _ in range(4):
        xs = np.arange(lo[0] + step / 2.0, hi[0], step)
        ys = np.arange(lo[1] + step / 2.0, hi[1], step)
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        inside = grid[points_in_polygon(grid, poly)]
        if len(inside) >= target // 2:
            return inside
        step /= 1.5
    return np.asarray(poly.mean(axis=0, keepdims=True))


def _rotate(points: F64, cos_a: float, sin_a: float, shift: F64) -> F64:
    rot = np.array([[cos_a, sin_a], [-sin_a, cos_a]])  # row vectors: p @ rot == R p
    return np.asarray(points @ rot - shift)


def place_shape(
    shape: Shape,
    *,
    class_id: int,
    u_mm: float,
    x_mm: float,
    angle_rad: float,
    z: float,
    colour_noise: tuple[float, float, float],
    motion: ResidualMotion,
    object_id: int = 0,
) -> ObjectSpec:
    """Rotate a shape onto the belt, centre it on its footprint box and precompute samples.

    Args:
        shape: footprint and look in the object frame (long axis along local x).
        class_id: class index.
        u_mm: belt-fixed centre.
        x_mm: lateral centre.
        angle_rad: rotation in the belt plane; 0 puts the long axis across the
            belt, pi/2 along it.
        z: drawing order.
        colour_noise: per-object colour offsets in ``[-1, 1]``.
        motion: residual motion.
        object_id: id (the world assigns the final one).
    """
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    outline = _rotate(densify(shape.outline_mm, MAX_EDGE_MM, closed=True), c, s, np.zeros(2))
    shift = (outline.min(axis=0) + outline.max(axis=0)) / 2.0
    outline = outline - shift
    decos = tuple(
        Decoration(
            _rotate(densify(d.points_mm, MAX_EDGE_MM, closed=d.kind == "fill"), c, s, shift),
            d.bgr,
            d.kind,
            d.thickness_mm,
        )
        for d in shape.decorations
    )
    half = outline.max(axis=0)
    return ObjectSpec(
        object_id=object_id,
        class_id=class_id,
        u_mm=float(u_mm),
        x_mm=float(x_mm),
        footprint_mm=outline,
        samples_mm=footprint_samples(outline),
        half_width_mm=float(half[0]),
        half_length_mm=float(half[1]),
        area_mm2=polygon_area(outline),
        decorations=decos,
        bgr=shape.bgr,
        alpha=shape.alpha,
        z=float(z),
        colour_noise=colour_noise,
        motion=motion,
    )


def draw_motion(rng: np.random.Generator, rolls: bool, angle_rad: float, slide_speed_mm_s: float) -> ResidualMotion:
    """Residual motion of a sliding or rolling object (bounded by ``slide_speed_mm_s``).

    Cylinders roll across their own axis and faster; other objects slide slowly
    in a random direction. The velocity varies slowly (period 2-6 s).
    """
    if rolls:
        mag = rng.uniform(0.3, 1.0) * slide_speed_mm_s
        direction = angle_rad + math.pi / 2.0 + (math.pi if rng.random() < 0.5 else 0.0)
    else:
        mag = rng.uniform(0.1, 0.5) * slide_speed_mm_s
        direction = rng.uniform(0.0, 2.0 * math.pi)
    ux, uy = math.cos(direction), math.sin(direction)
    steady = rng.uniform(0.5, 0.8)
    return ResidualMotion(
        vx0_mm_s=mag * steady * ux,
        ax_mm_s=mag * (1.0 - steady) * ux,
        vy0_mm_s=mag * steady * uy,
        ay_mm_s=mag * (1.0 - steady) * uy,
        omega_rad_s=2.0 * math.pi / rng.uniform(2.0, 6.0),
    )


def make_object(
    rng: np.random.Generator,
    class_name: str,
    class_id: int,
    *,
    u_mm: float,
    x_mm: float | None,
    belt_width_mm: float,
    sliding: bool,
    slide_speed_mm_s: float,
    angle_rad: float | None = None,
) -> ObjectSpec:
    """Draw one object of a class from ``rng`` (``x_mm=None``: uniform across the belt)."""
    shape = SHAPES[class_name](rng)
    angle = float(rng.uniform(0.0, 2.0 * math.pi)) if angle_rad is None else angle_rad
    z = float(rng.random())
    noise = rng.uniform(-1.0, 1.0, 3)
    motion = draw_motion(rng, shape.rolls, angle, slide_speed_mm_s) if sliding else ResidualMotion()
    spec = place_shape(
        shape,
        class_id=class_id,
        u_mm=u_mm,
        x_mm=0.0,
        angle_rad=angle,
        z=z,
        colour_noise=(float(noise[0]), float(noise[1]), float(noise[2])),
        motion=motion,
    )
    if x_mm is None:
        hw = spec.half_width_mm
        x_mm = float(rng.uniform(hw, belt_width_mm - hw)) if 2.0 * hw < belt_width_mm else belt_width_mm / 2.0
    return replace(spec, x_mm=float(x_mm))


class ArrivalGenerator:
    """Poisson stream of objects along the belt-fixed coordinate, upstream-going.

    Args:
        seed: world seed.
        density_per_m2: mean objects per square metre of belt.
        belt_width_mm: belt width.
        class_names: classes to draw from (each must have a shape in ``SHAPES``).
        class_weights: relative frequency per class (same order).
        slide_fraction: share of objects that slide or roll.
        slide_speed_mm_s: bound of their residual speed.
        u_start_mm: belt-fixed position the stream starts from; each next
            object lies an exponential gap further upstream (smaller ``u``).
    """

    def __init__(
        self,
        seed: int,
        density_per_m2: float,
        belt_width_mm: float,
        class_names: Sequence[str],
        class_weights: Sequence[float],
        slide_fraction: float,
        slide_speed_mm_s: float,
        u_start_mm: float,
    ) -> None:
        self._seed = int(seed)
        per_mm = density_per_m2 * belt_width_mm / 1e6  # objects per mm of belt length
        self._mean_gap_mm = 1.0 / per_mm if per_mm > 0 else math.inf
        self._width = float(belt_width_mm)
        self._names = tuple(class_names)
        w = np.asarray(class_weights, dtype=np.float64)
        self._p = w / w.sum()
        self._slide_fraction = float(slide_fraction)
        self._slide_speed = float(slide_speed_mm_s)
        self._u = float(u_start_mm)
        self._index = 0

    @property
    def index(self) -> int:
        """Number of objects drawn so far."""
        return self._index

    def next(self) -> ObjectSpec | None:
        """The next object upstream, or ``None`` when the density is zero."""
        if not math.isfinite(self._mean_gap_mm):
            return None
        rng = np.random.default_rng([self._seed, 7, self._index])
        self._index += 1
        self._u -= float(rng.exponential(self._mean_gap_mm))
        cls = int(rng.choice(len(self._names), p=self._p))
        return make_object(
            rng,
            self._names[cls],
            cls,
            u_mm=self._u,
            x_mm=None,
            belt_width_mm=self._width,
            sliding=bool(rng.random() < self._slide_fraction),
            slide_speed_mm_s=self._slide_speed,
        )
