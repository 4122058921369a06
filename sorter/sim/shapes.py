"""Footprints and looks of the material classes, in each object's own frame.

Every generator returns a :class:`Shape` whose long axis lies along local
``x`` (millimetres, centred near the origin), before the object is rotated
onto the belt. Sizes are realistic: a PET bottle is 60-90 mm across and
180-300 mm long, a can 53-66 x 115-168 mm, cardboard 150-500 mm, paper
100-300 mm, film 150-400 mm. Colours are BGR.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
BGR = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Decoration:
    """A detail drawn on top of an object's fill (cap, label, rim, tape, text line...).

    Attributes:
        points_mm: ``(N, 2)`` polygon (``fill``) or polyline (``line``) in the object frame.
        bgr: colour.
        kind: ``"fill"`` or ``"line"``.
        thickness_mm: line thickness (``line`` only).
    """

    points_mm: F64
    bgr: BGR
    kind: Literal["fill", "line"] = "fill"
    thickness_mm: float = 2.0


@dataclass(frozen=True, slots=True)
class Shape:
    """Footprint and appearance of one object before placement.

    Attributes:
        outline_mm: ``(N, 2)`` closed footprint polygon in the object frame.
        decorations: details drawn over the fill, in drawing order.
        bgr: fill colour.
        alpha: opacity (film and clear PET are translucent).
        rolls: a lying cylinder, which rolls more easily than it slides.
    """

    outline_mm: F64
    decorations: tuple[Decoration, ...]
    bgr: BGR
    alpha: float
    rolls: bool


# ---------------------------------------------------------------------- primitives


def _jitter(rng: np.random.Generator, bgr: Sequence[int], amount: int = 12) -> BGR:
    c = np.clip(np.asarray(bgr, dtype=np.int64) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def _shade(bgr: BGR, delta: int) -> BGR:
    return (min(255, max(0, bgr[0] + delta)), min(255, max(0, bgr[1] + delta)), min(255, max(0, bgr[2] + delta)))


def _pick(rng: np.random.Generator, palette: Sequence[BGR]) -> BGR:
    return palette[int(rng.integers(len(palette)))]


def rect(x0: float, x1: float, y0: float, y1: float) -> F64:
    """Axis-aligned rectangle polygon."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def rounded_rect(length: float, width: float, radius: float, per_corner: int = 5) -> F64:
    """Rounded rectangle centred at the origin, length along x."""
    r = max(0.0, min(radius, length / 2.0, width / 2.0))
    hx, hy = length / 2.0 - r, width / 2.0 - r
    pts: list[tuple[float, float]] = []
    for cx, cy, a0 in ((hx, hy, 0.0), (-hx, hy, 90.0), (-hx, -hy, 180.0), (hx, -hy, 270.0)):
        for a in np.linspace(math.radians(a0), math.radians(a0 + 90.0), per_corner):
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return np.array(pts, dtype=np.float64)


def ellipse(a: float, b: float, n: int = 28) -> F64:
    """Ellipse with half-axes ``a`` (x) and ``b`` (y)."""
    th = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.column_stack([a * np.cos(th), b * np.sin(th)])


def blob(rng: np.random.Generator, radius: float, roughness: float, n: int = 40, harmonics: int = 5) -> F64:
    """Smooth irregular closed outline (film, crushed items)."""
    th = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, harmonics + 2):
        r += roughness / k * rng.uniform(-1.0, 1.0) * np.cos(k * th + rng.uniform(0.0, 2.0 * math.pi))
    r = radius * np.clip(r, 0.35, None)
    stretch = rng.uniform(1.0, 1.4)
    return np.column_stack([stretch * r * np.cos(th), r * np.sin(th) / stretch**0.5])


def crumpled(rng: np.random.Generator, radius: float, n: int = 16) -> F64:
    """Jagged polygon (crumpled paper, crushed can)."""
    th = np.sort(rng.uniform(0.0, 2.0 * math.pi, n))
    r = radius * rng.uniform(0.65, 1.15, n)
    return np.column_stack([r * np.cos(th), r * np.sin(th)])


def _profile(xs: F64, half_widths: F64) -> F64:
    """Closed outline of a body of revolution lying along x (upper edge, then lower edge back)."""
    upper = np.column_stack([xs, half_widths])
    lower = np.column_stack([xs[::-1], -half_widths[::-1]])
    return np.concatenate([upper, lower])


# ---------------------------------------------------------------------- classes


def pet_bottle(rng: np.random.Generator) -> Shape:
    """Lying PET bottle: rounded body, shoulder, neck and a coloured cap."""
    length = rng.uniform(180.0, 300.0)
    dia = rng.uniform(60.0, 90.0) * min(1.0, length / 200.0) ** 0.3
    neck_d = rng.uniform(26.0, 32.0)
    cap_len = rng.uniform(12.0, 18.0)
    neck_len = rng.uniform(0.12, 0.2) * length
    shoulder = rng.uniform(0.12, 0.2) * length
    r = dia * 0.25
    x0, x1 = -length / 2.0, length / 2.0
    x_sh = x1 - neck_len - shoulder
    xs = [x0 + r * (1 - math.cos(a)) for a in np.linspace(0.0, math.pi / 2, 5)]
    hs = [dia / 2.0 - r + r * math.sin(a) for a in np.linspace(0.0, math.pi / 2, 5)]
    for f in np.linspace(0.0, 1.0, 6)[1:]:
        xs.append(x_sh + f * shoulder)
        hs.append(neck_d / 2.0 + (dia - neck_d) / 2.0 * 0.5 * (1.0 + math.cos(math.pi * f)))
    xs += [x1 - cap_len, x1 - cap_len, x1]
    hs += [neck_d / 2.0, neck_d / 2.0 + 2.0, neck_d / 2.0 + 2.0]
    xs.insert(5, x_sh)
    hs.insert(5, dia / 2.0)
    outline = _profile(np.array(xs), np.array(hs))
    tint, alpha = [((205, 195, 180), 0.55), ((225, 175, 125), 0.62), ((95, 165, 70), 0.75), ((45, 75, 115), 0.82)][
        int(rng.choice(4, p=[0.5, 0.2, 0.2, 0.1]))
    ]
    body = _jitter(rng, tint, 10)
    cap = _jitter(rng, _pick(rng, [(240, 240, 240), (170, 80, 20), (40, 40, 190), (50, 140, 40), (30, 30, 30)]), 10)
    decos = [Decoration(rect(x1 - cap_len, x1, -neck_d / 2.0 - 2.0, neck_d / 2.0 + 2.0), cap)]
    if rng.random() < 0.8:
        la = x0 + rng.uniform(0.2, 0.35) * length
        lb = min(la + rng.uniform(0.2, 0.3) * length, x_sh)
        label = _jitter(rng, _pick(rng, [(40, 40, 200), (200, 120, 30), (240, 240, 240), (40, 170, 230), (60, 150, 40)]), 20)
        decos.append(Decoration(rect(la, lb, -dia / 2.0 + 1.0, dia / 2.0 - 1.0), label))
    decos.append(Decoration(rect(x0 + r, x_sh, dia * 0.12, dia * 0.22), _shade(body, 45)))
    return Shape(outline, tuple(decos), body, alpha, rolls=True)


def hdpe_container(rng: np.random.Generator) -> Shape:
    """Opaque HDPE jug or tub with a cap and a handle recess."""
    colour = _jitter(
        rng, _pick(rng, [(235, 235, 232), (205, 218, 222), (185, 115, 45), (60, 200, 230), (55, 55, 200), (75, 150, 65)]), 12
    )
    if rng.random() < 0.3:
        a = rng.uniform(60.0, 110.0)
        outline = ellipse(a, a * rng.uniform(0.75, 1.0))
        decos = [Decoration(ellipse(a * 0.8, a * 0.6), _shade(colour, -25), "line", 3.0)]
        return Shape(outline, tuple(decos), colour, 1.0, rolls=False)
    length = rng.uniform(150.0, 300.0)
    width = rng.uniform(100.0, 200.0)
    outline = rounded_rect(length, width, rng.uniform(15.0, 30.0))
    cap_r = rng.uniform(16.0, 22.0)
    cap_xy = np.array([length / 2.0 - cap_r - 8.0, width / 2.0 - cap_r - 8.0])
    cap = _jitter(rng, _pick(rng, [(240, 240, 240), (170, 80, 20), (40, 40, 190), (30, 160, 230)]), 10)
    handle = rounded_rect(length * 0.3, width * 0.18, 8.0) + np.array([-length * 0.15, -width * 0.22])
    decos = [
        Decoration(ellipse(cap_r, cap_r, 16) + cap_xy, cap),
        Decoration(handle, _shade(colour, -60)),
        Decoration(rect(-length * 0.35, length * 0.25, width * 0.1, width * 0.18), _shade(colour, 30)),
    ]
    return Shape(outline, tuple(decos), colour, 1.0, rolls=False)


def alu_can(rng: np.random.Generator) -> Shape:
    """Lying aluminium can (rim highlights, print band), sometimes crushed flat."""
    colour = _jitter(
        rng, _pick(rng, [(190, 190, 195), (40, 40, 200), (160, 80, 30), (60, 160, 200), (40, 40, 40), (60, 140, 40)]), 15
    )
    rim = (215, 215, 220)
    if rng.random() < 0.2:
        outline = crumpled(rng, rng.uniform(40.0, 55.0), 14)
        decos = [Decoration(crumpled(rng, 18.0, 8), rim)]
        return Shape(outline, tuple(decos), colour, 1.0, rolls=False)
    dia, length = [(66.0, 122.0), (53.0, 115.0), (66.0, 168.0)][int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
    dia *= rng.uniform(0.98, 1.02)
    length *= rng.uniform(0.98, 1.02)
    outline = rounded_rect(length, dia, 5.0, 4)
    end = length / 2.0 - 4.0
    decos = [
        Decoration(np.array([[-end, -dia / 2.0 + 2.0], [-end, dia / 2.0 - 2.0]]), rim, "line", 3.0),
        Decoration(np.array([[end, -dia / 2.0 + 2.0], [end, dia / 2.0 - 2.0]]), rim, "line", 3.0),
        Decoration(rect(-end + 6.0, end - 6.0, dia * 0.1, dia * 0.22), _shade(colour, 70)),
    ]
    return Shape(outline, tuple(decos), colour, 1.0, rolls=True)


def cardboard(rng: np.random.Generator) -> Shape:
    """Flattened cardboard: large brown quadrilateral with packing tape and print."""
    length = rng.uniform(150.0, 500.0)
    width = rng.uniform(150.0, min(500.0, length))
    outline = rect(-length / 2.0, length / 2.0, -width / 2.0, width / 2.0) + rng.uniform(-6.0, 6.0, (4, 2))
    colour = _jitter(rng, (70, 120, 160), 15)
    tape_w = rng.uniform(40.0, 50.0)
    decos = [
        Decoration(rect(-length / 2.0 + 2.0, length / 2.0 - 2.0, -tape_w / 2.0, tape_w / 2.0), _jitter(rng, (150, 190, 212), 10))
    ]
    if rng.random() < 0.6:
        px, py = rng.uniform(-0.3, 0.1) * length, rng.uniform(0.15, 0.3) * width
        decos.append(Decoration(rect(px, px + 0.2 * length, py, py + 0.12 * width), _shade(colour, -55)))
    return Shape(outline, tuple(decos), colour, 1.0, rolls=False)


def paper(rng: np.random.Generator) -> Shape:
    """A sheet with lines of print, or a crumpled ball of paper."""
    colour = _jitter(rng, _pick(rng, [(238, 240, 242), (212, 226, 232), (185, 190, 190), (200, 225, 240), (235, 215, 200)]), 8)
    ink = (70, 70, 75)
    if rng.random() < 0.4:
        radius = rng.uniform(50.0, 110.0)
        outline = crumpled(rng, radius, int(rng.integers(14, 21)))
        creases = tuple(Decoration(rng.uniform(-0.5, 0.5, (2, 2)) * radius, _shade(colour, -45), "line", 2.0) for _ in range(3))
        return Shape(outline, creases, colour, 1.0, rolls=False)
    length = rng.uniform(100.0, 300.0)
    width = length / math.sqrt(2.0) * rng.uniform(0.9, 1.1)
    outline = rect(-length / 2.0, length / 2.0, -width / 2.0, width / 2.0) + rng.uniform(-3.0, 3.0, (4, 2))
    lines = []
    margin = 0.12 * length
    for y in np.arange(-width / 2.0 + 0.15 * width, width / 2.0 - 0.15 * width, rng.uniform(8.0, 14.0)):
        x_end = length / 2.0 - margin - rng.uniform(0.0, 0.3) * length
        lines.append(Decoration(np.array([[-length / 2.0 + margin, y], [x_end, y]]), ink, "line", 1.5))
    return Shape(outline, tuple(lines[:14]), colour, 1.0, rolls=False)


def film(rng: np.random.Generator) -> Shape:
    """Plastic film: irregular translucent blob with wrinkle highlights."""
    radius = rng.uniform(65.0, 150.0)
    outline = blob(rng, radius, 0.4)
    tint, alpha = [((215, 215, 215), 0.35), ((235, 235, 235), 0.6), ((175, 125, 60), 0.5), ((35, 35, 35), 0.78)][
        int(rng.choice(4, p=[0.4, 0.25, 0.2, 0.15]))
    ]
    colour = _jitter(rng, tint, 10)
    wrinkles = tuple(
        Decoration(np.cumsum(rng.uniform(-0.3, 0.3, (4, 2)), axis=0) * radius, _shade(colour, 45), "line", 2.0) for _ in range(3)
    )
    return Shape(outline, wrinkles, colour, alpha, rolls=False)


#: class name -> shape generator (explicit registry, in ``MATERIAL_CLASSES`` order)
SHAPES: dict[str, Callable[[np.random.Generator], Shape]] = {
    "pet_bottle": pet_bottle,
    "hdpe_container": hdpe_container,
    "alu_can": alu_can,
    "cardboard": cardboard,
    "paper": paper,
    "film": film,
}
