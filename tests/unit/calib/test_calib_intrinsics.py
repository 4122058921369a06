"""Intrinsics calibration against OpenCV's published reference calibrations of real photos, and its safeguards."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sorter.calib.boards import BoardDetection, BoardSpec, detect_board, render_board
from sorter.calib.intrinsics import (
    IntrinsicsOptions,
    calibrate_intrinsics,
    coverage,
    intrinsics_from_dict,
    result_to_dict,
)
from sorter.errors import CalibrationError
from sorter.geometry import CameraModel
from sorter.sim.marker_sheet import PlaneView, board_poses, render_board_view

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "calib"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared calibration data (../shared/data/calib) not present")

CHESS = BoardSpec("chessboard", 9, 6, 25.0)
CHARUCO = BoardSpec("charuco", 5, 7, 40.0, 20.0, dictionary="DICT_6X6_250")


def _reference(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Camera matrix, distortion and average reprojection error from an OpenCV calibration file."""
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    try:
        k = fs.getNode("camera_matrix").mat()
        d = fs.getNode("distortion_coefficients").mat().ravel()
        rms = fs.getNode("avg_reprojection_error").real()
    finally:
        fs.release()
    return k, d, rms


def _views(pattern: str, spec: BoardSpec) -> list[tuple[str, BoardDetection]]:
    out = []
    for f in sorted(DATA.glob(pattern)):
        det = detect_board(cv2.imread(str(f)), spec)
        assert det is not None, f"board not found in {f.name}"
        out.append((f.name, det))
    return out


@needs_data
def test_opencv_chessboard_sample_matches_the_reference_calibration() -> None:
    k_ref, _d_ref, rms_ref = _reference(DATA / "opencv_stereo_chessboard" / "left_intrinsics.yml")
    views = _views("opencv_stereo_chessboard/left*.jpg", CHESS)
    assert len(views) == 13
    r = calibrate_intrinsics(views, 640, 480, CHESS, IntrinsicsOptions(fix_aspect_ratio=True))
    i = r.intrinsics
    assert i.fx == i.fy
    assert abs(i.fx / k_ref[0, 0] - 1.0) < 0.005
    assert abs(i.cx - k_ref[0, 2]) < 2.0 and abs(i.cy - k_ref[1, 2]) < 2.0
    assert abs(r.rms_px - rms_ref) < 0.02
    assert r.passed and not r.rejected  # left02 reprojects worst (1.18 px) but is kept, as in the reference
    worst = max(r.views, key=lambda v: v.rms_px)
    assert worst.source == "left02.jpg"


@needs_data
def test_opencv_charuco_photos_match_the_reference_focal_length() -> None:
    k_ref, _d, _rms = _reference(DATA / "opencv_aruco_charuco" / "tutorial_camera_charuco.yml")
    views = _views("opencv_aruco_charuco/img_0*.jpg", CHARUCO)
    r = calibrate_intrinsics(views, 640, 480, CHARUCO)
    assert abs(r.intrinsics.fx / k_ref[0, 0] - 1.0) < 0.02
    assert abs(r.intrinsics.fy / k_ref[1, 1] - 1.0) < 0.02
    assert any("10-20 views" in h for h in r.hints)  # four views only: the result says so


@needs_data
def test_a_mis_detected_view_is_left_out_with_a_reason() -> None:
    views = _views("opencv_stereo_chessboard/left*.jpg", CHESS)
    clean = calibrate_intrinsics(views, 640, 480, CHESS, IntrinsicsOptions(fix_aspect_ratio=True))
    name, det = views[3]
    pts = det.image_points_px.copy()
    pts[:9] = pts[:9][::-1]  # first row of corners numbered backwards: a classic mis-detection
    bad = BoardDetection(pts, det.object_points_mm, det.point_ids, edge_width_px=det.edge_width_px)
    r = calibrate_intrinsics([*views[:3], (name, bad), *views[4:]], 640, 480, CHESS, IntrinsicsOptions(fix_aspect_ratio=True))
    assert [x.source for x in r.rejected] == [name]
    assert "reprojects badly" in r.rejected[0].reason
    assert abs(r.intrinsics.fx - clean.intrinsics.fx) / clean.intrinsics.fx < 0.01


@needs_data
def test_blurred_views_are_rejected_and_too_few_views_stop() -> None:
    views = []
    for f in sorted((DATA / "opencv_stereo_chessboard").glob("left0[1-6].jpg")):
        img = cv2.imread(str(f))
        blurred = cv2.GaussianBlur(img, (0, 0), 3.0)
        det = detect_board(blurred, CHESS)
        if det is not None:
            views.append((f.name, det))
    assert views, "OpenCV should still find the board in mildly blurred photos"
    with pytest.raises(CalibrationError) as e:
        calibrate_intrinsics(views, 640, 480, CHESS)
    assert "usable view" in str(e.value) and "blurred" in str(e.value)


def test_coverage_hints_name_the_missing_edge() -> None:
    right_half = [np.array([[400.0, 50.0], [620.0, 50.0], [620.0, 430.0], [400.0, 430.0]])]
    frac, hints = coverage(right_half, 640, 480)
    assert 0.25 < frac < 0.45
    assert "move the board to the left edge of the image" in hints
    assert not any("right edge" in h for h in hints)


def test_simulated_views_recover_the_true_lens() -> None:
    truth = CameraModel.looking_down(800, 600, 60.0, 1000.0, 0.0, dist=(-0.12, 0.03, 0.0, 0.0, 0.0))
    spec = BoardSpec("chessboard", 9, 6, 30.0)
    texture = render_board(spec, 6.0, 15.0)
    view = PlaneView(truth, supersample=2)
    views = []
    for i, pose in enumerate(board_poses(truth, spec.pattern_size_mm(), 10, seed=3)):
        det = detect_board(render_board_view(view, texture, pose, noise_sigma=2.0, seed=i), spec)
        assert det is not None
        views.append((f"v{i}", det))
    r = calibrate_intrinsics(views, 800, 600, spec, IntrinsicsOptions(distortion="auto"))
    assert abs(r.intrinsics.fx / truth.fx - 1.0) < 0.005
    assert abs(r.intrinsics.cx - truth.cx) < 2.0 and abs(r.intrinsics.cy - truth.cy) < 2.0
    assert abs(r.intrinsics.dist[0] - truth.dist[0]) < 0.02
    assert r.rms_px < 0.3 and r.passed
    d = result_to_dict(r, spec)
    assert {"fx", "fy", "cx", "cy", "dist", "rms_px"} <= set(d)
    assert intrinsics_from_dict(d) == r.intrinsics
