"""Encoder scale from sheets riding the belt: synthetic sightings, rendered frames, and the bad-input stops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sorter.calib.boards import BoardSpec, detect_board, render_board
from sorter.calib.speed import (
    Sightings,
    SpeedThresholds,
    fit_mm_per_count,
    mm_per_count_from_length,
    sightings_from_detection,
)
from sorter.errors import CalibrationError
from sorter.geometry import CameraModel
from sorter.sim.marker_sheet import BeltMotion, BeltSheetScene


def _synthetic(mm_per_count: float, counts: np.ndarray, n_points: int, noise_mm: float, seed: int = 0) -> Sightings:
    rng = np.random.default_rng(seed)
    u = rng.uniform(-300.0, 300.0, n_points)
    frame, cnt, pid, y = [], [], [], []
    for j, c in enumerate(counts):
        for i in range(n_points):
            frame.append(j)
            cnt.append(int(c))
            pid.append(i)
            y.append(u[i] + mm_per_count * c + rng.normal(0.0, noise_mm))
    n = len(frame)
    return Sightings(
        np.array(frame, np.int64),
        np.array(frame, np.int64) * 16_666_667,
        np.array(cnt, np.int64),
        np.array(pid, np.int64),
        rng.normal(500.0, 0.1, n),
        np.array(y),
    )


@settings(max_examples=25, deadline=None)
@given(st.floats(0.01, 1.0), st.integers(0, 10_000))
def test_exact_sightings_give_the_exact_scale(mm_per_count: float, start: int) -> None:
    counts = start + np.arange(0, 30) * round(40.0 / mm_per_count)
    fit = fit_mm_per_count(_synthetic(mm_per_count, counts, 6, 0.0))
    assert abs(fit.mm_per_count / mm_per_count - 1.0) < 1e-9
    assert fit.residual_rms_mm < 1e-6


def test_noisy_sightings_within_their_uncertainty() -> None:
    counts = np.arange(0, 40) * 250
    fit = fit_mm_per_count(_synthetic(0.0987, counts, 20, 0.3, seed=2))
    assert abs(fit.mm_per_count / 0.0987 - 1.0) < 4 * fit.rel_std_error
    assert fit.passed and fit.rel_std_error < 1e-4


def test_a_belt_that_did_not_move_stops() -> None:
    s = _synthetic(0.1, np.full(30, 1234), 10, 0.05)
    with pytest.raises(CalibrationError, match="did not move"):
        fit_mm_per_count(s)


def test_an_encoder_that_does_not_count_stops() -> None:
    s = _synthetic(0.1, np.arange(30) * 400, 10, 0.05)
    frozen = Sightings(s.frame, s.t_ns, np.full(len(s), 77, np.int64), s.point_id, s.x_mm, s.y_w_mm)
    with pytest.raises(CalibrationError, match="encoder counted only"):
        fit_mm_per_count(frozen)


def test_counting_backwards_stops() -> None:
    s = _synthetic(0.1, np.arange(30) * 400, 10, 0.05)
    with pytest.raises(CalibrationError, match="backwards"):
        fit_mm_per_count(Sightings(s.frame, s.t_ns, -s.count, s.point_id, s.x_mm, s.y_w_mm))


def test_measured_length() -> None:
    assert mm_per_count_from_length(25_000.0, 250_000) == pytest.approx(0.1)
    with pytest.raises(CalibrationError, match="did not move"):
        mm_per_count_from_length(25_000.0, 0)


def test_rendered_sheet_riding_a_varying_belt() -> None:
    """Frames rendered through a distorted camera while the belt speeds up and slows down by 15 %."""
    cam = CameraModel.looking_down(960, 540, 60.0, 1100.0, 600.0, 0.0, dist=(-0.05, 0.01, 0.0, 0.0, 0.0))
    sheet = BoardSpec("charuco", 11, 7, 100.0, 70.0, dictionary="DICT_5X5_100")
    motion = BeltMotion(mean_speed_mm_s=1500.0, counts_per_mm=10.137, variation=0.15, period_s=0.4)
    scene = BeltSheetScene(cam, render_board(sheet, 1.5, 10.0), 50.0, -450.0, supersample=2, noise_sigma=2.0)
    parts = []
    for j in range(16):
        t_ns = j * 33_333_333
        det = detect_board(scene.render(motion.odometer_mm(t_ns)), sheet)
        if det is not None:
            parts.append(sightings_from_detection(det, cam, j, t_ns, motion.encoder_count(t_ns)))
    fit = fit_mm_per_count(Sightings.concat(parts), SpeedThresholds(max_speed_cv=0.05))
    assert abs(fit.mm_per_count * motion.counts_per_mm - 1.0) < 0.001
    assert fit.passed
    assert any("speed varies" in w for w in fit.warnings)
    assert abs(fit.speed_mean_mm_s - 1500.0) < 150.0
