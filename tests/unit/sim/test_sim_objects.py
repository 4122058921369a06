"""Simulated objects: Poisson arrivals, determinism, realistic shapes, footprint samples, residual motion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sorter.entities import MATERIAL_CLASSES
from sorter.sim.objects import ArrivalGenerator, ObjectSpec, densify, footprint_samples, points_in_polygon, polygon_area
from sorter.sim.population import Population

WIDTH_MM = 1200.0


def _stream(seed: int, density: float, n: int, slide_fraction: float = 0.15) -> list[ObjectSpec]:
    g = ArrivalGenerator(seed, density, WIDTH_MM, MATERIAL_CLASSES, [1.0] * 6, slide_fraction, 40.0, u_start_mm=0.0)
    out = []
    for _ in range(n):
        spec = g.next()
        assert spec is not None
        out.append(spec)
    return out


def test_poisson_density_matches_config_over_a_long_stretch() -> None:
    density = 3.0
    specs = _stream(5, density, 3000)
    length_m = -specs[-1].u_mm / 1000.0
    measured = len(specs) / (length_m * WIDTH_MM / 1000.0)
    # 3000 arrivals: relative standard error ~1.8 %
    assert measured == pytest.approx(density, rel=0.07)
    # Poisson: gaps are exponential, so their coefficient of variation is ~1
    gaps = -np.diff([s.u_mm for s in specs])
    assert np.all(gaps >= 0)
    assert float(gaps.std() / gaps.mean()) == pytest.approx(1.0, abs=0.1)
    # objects stay on the belt laterally
    for s in specs:
        assert s.x_mm - s.half_width_mm >= -1e-6 or 2 * s.half_width_mm >= WIDTH_MM
        assert s.x_mm + s.half_width_mm <= WIDTH_MM + 1e-6 or 2 * s.half_width_mm >= WIDTH_MM


def test_every_class_appears_with_roughly_equal_share_and_realistic_sizes() -> None:
    specs = _stream(11, 5.0, 1200)
    counts = np.bincount([s.class_id for s in specs], minlength=6)
    assert np.all(counts > 1200 / 6 * 0.7)
    size = [_diameter(s.footprint_mm) for s in specs]  # longest dimension, whatever the rotation
    longest = {c: max(d for d, s in zip(size, specs, strict=True) if s.class_id == c) for c in range(6)}
    shortest = {c: min(d for d, s in zip(size, specs, strict=True) if s.class_id == c) for c in range(6)}
    name = {n: i for i, n in enumerate(MATERIAL_CLASSES)}
    assert shortest[name["pet_bottle"]] >= 180 and longest[name["pet_bottle"]] <= 310
    assert shortest[name["alu_can"]] >= 70 and longest[name["alu_can"]] <= 185  # crushed ~80, 500 ml can ~180
    assert shortest[name["cardboard"]] >= 200 and longest[name["cardboard"]] <= 720  # 150..500 square sides
    assert shortest[name["film"]] >= 130 and longest[name["film"]] <= 560
    assert shortest[name["paper"]] >= 90 and longest[name["paper"]] <= 400
    # film and clear bottles are translucent, cardboard and cans are opaque
    alphas = {c: [s.alpha for s in specs if s.class_id == c] for c in range(6)}
    assert min(alphas[name["film"]]) < 0.5
    assert min(alphas[name["cardboard"]]) == 1.0
    assert min(alphas[name["alu_can"]]) == 1.0


def _diameter(poly: np.ndarray) -> float:
    d = poly[:, None, :] - poly[None, :, :]
    return float(np.sqrt((d**2).sum(-1)).max())


def test_same_seed_same_stream_different_seed_differs() -> None:
    a = _stream(3, 4.0, 40)
    b = _stream(3, 4.0, 40)
    c = _stream(4, 4.0, 40)
    for sa, sb in zip(a, b, strict=True):
        assert sa.u_mm == sb.u_mm and sa.x_mm == sb.x_mm and sa.class_id == sb.class_id
        assert np.array_equal(sa.footprint_mm, sb.footprint_mm)
        assert sa.motion == sb.motion
    assert [s.u_mm for s in a] != [s.u_mm for s in c]


def test_zero_density_produces_nothing() -> None:
    g = ArrivalGenerator(1, 0.0, WIDTH_MM, MATERIAL_CLASSES, [1.0] * 6, 0.0, 0.0, 0.0)
    assert g.next() is None


def test_footprint_samples_cover_the_polygon_evenly() -> None:
    sq = np.array([[0.0, 0.0], [200.0, 0.0], [200.0, 100.0], [0.0, 100.0]])
    pts = footprint_samples(sq, target=96)
    assert len(pts) >= 48
    assert np.all(points_in_polygon(pts, sq))
    # even coverage: the left half holds about half the samples
    assert np.mean(pts[:, 0] < 100.0) == pytest.approx(0.5, abs=0.08)
    assert polygon_area(sq) == pytest.approx(20000.0)
    dense = densify(sq, 20.0, closed=True)
    assert len(dense) == 30
    assert np.max(np.hypot(*np.diff(np.vstack([dense, dense[:1]]), axis=0).T)) <= 20.0 + 1e-9


def test_objects_are_centred_on_their_footprint_box_and_samples_lie_inside() -> None:
    for s in _stream(8, 4.0, 60):
        lo = s.footprint_mm.min(axis=0)
        hi = s.footprint_mm.max(axis=0)
        assert np.allclose((lo + hi) / 2.0, 0.0, atol=1e-9)
        assert hi[0] == pytest.approx(s.half_width_mm) and hi[1] == pytest.approx(s.half_length_mm)
        inside = points_in_polygon(s.samples_mm, s.footprint_mm)
        assert inside.mean() > 0.95
        assert s.area_mm2 == pytest.approx(polygon_area(s.footprint_mm))


def test_residual_motion_is_bounded_and_continuous() -> None:
    specs = _stream(9, 4.0, 200, slide_fraction=1.0)
    pop = Population(WIDTH_MM)
    for s in specs:
        pop.add(s, t_birth_s=0.0, counted=True)
    x0, y0 = pop.centres(0.0, 0.0)
    x1, y1 = pop.centres(2.0, 5000.0)
    moved = np.hypot(x1 - x0, y1 - 5000.0 - y0)
    assert np.all(moved <= 40.0 * 2.0 + 1e-6)  # slide_speed x time
    assert np.count_nonzero(moved > 1.0) > 150  # they do slide
    # objects never leave the belt
    assert np.all(x1 - pop.half_width_mm >= -1e-6) or np.any(2 * pop.half_width_mm >= WIDTH_MM)
    # before birth there is no residual motion
    _xb, yb = pop.centres(-1.0, 0.0)
    assert np.allclose(yb, [s.u_mm for s in specs])
    assert math.isfinite(float(np.sum(x1)))
