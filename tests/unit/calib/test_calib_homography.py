"""Camera-to-belt pose from a marker sheet: rendered through a known mount, and on a real photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sorter.calib.boards import BoardDetection, BoardSpec, detect_board, render_board
from sorter.calib.homography import (
    BeltThresholds,
    SheetPlacement,
    belt_fit_to_dict,
    camera_from_belt_dict,
    fit_belt_pose,
    mapping_error_mm,
)
from sorter.calib.intrinsics import CameraIntrinsics
from sorter.errors import CalibrationError
from sorter.geometry import CameraModel
from sorter.sim.marker_sheet import BeltSheetScene

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "calib"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared calibration data (../shared/data/calib) not present")

SHEET = BoardSpec("charuco", 11, 7, 100.0, 70.0, dictionary="DICT_5X5_100")
PLACE = SheetPlacement(x_mm=50.0, y_mm=-250.0)


@pytest.fixture(scope="module")
def mount() -> CameraModel:
    """A tilted camera with noticeable barrel distortion over a 1.2 m belt."""
    return CameraModel.looking_down(1280, 720, 60.0, 1100.0, 600.0, 80.0, tilt_deg=4.0, dist=(-0.08, 0.02, 0.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def sheet_view(mount: CameraModel) -> np.ndarray:
    scene = BeltSheetScene(mount, render_board(SHEET, 2.0, 10.0), PLACE.x_mm, PLACE.y_mm, noise_sigma=2.0, seed=5)
    return scene.render(0.0)


def test_sheet_on_the_simulated_belt_recovers_the_mount(mount: CameraModel, sheet_view: np.ndarray) -> None:
    det = detect_board(sheet_view, SHEET)
    assert det is not None and len(det) >= 40
    fit = fit_belt_pose(det, CameraIntrinsics.of(mount), PLACE)
    assert fit.passed, fit.problems
    assert fit.rms_mm < 0.3
    rms, mx = mapping_error_mm(fit.camera, mount)
    assert rms < 0.3 and mx < 1.0  # across the whole image, not only where the sheet lies
    assert abs(fit.camera_height_mm - 1100.0) < 3.0
    # the stored section rebuilds the same camera
    back = camera_from_belt_dict(belt_fit_to_dict(fit, PLACE, BeltThresholds(), SHEET.to_dict()))
    assert mapping_error_mm(back, fit.camera)[1] < 1e-9


def test_wrong_lens_model_fails_with_advice(mount: CameraModel, sheet_view: np.ndarray) -> None:
    det = detect_board(sheet_view, SHEET)
    assert det is not None
    wrong = CameraIntrinsics.of(mount)
    wrong = CameraIntrinsics(wrong.width_px, wrong.height_px, wrong.fx, wrong.fy, wrong.cx, wrong.cy, (-0.25, 0.0, 0.0, 0.0, 0.0))
    fit = fit_belt_pose(det, wrong, PLACE)
    assert not fit.passed
    assert any("intrinsics" in p for p in fit.problems)


def test_placement_shifts_the_belt_frame(mount: CameraModel, sheet_view: np.ndarray) -> None:
    det = detect_board(sheet_view, SHEET)
    assert det is not None
    told = SheetPlacement(PLACE.x_mm + 20.0, PLACE.y_mm)
    fit = fit_belt_pose(det, CameraIntrinsics.of(mount), told)
    centre = np.array([[640.0, 360.0]])
    shift = fit.camera.pixel_to_belt(centre) - mount.pixel_to_belt(centre)
    assert abs(shift[0, 0] - 20.0) < 0.5 and abs(shift[0, 1]) < 0.5


def test_too_few_points_stop(mount: CameraModel, sheet_view: np.ndarray) -> None:
    det = detect_board(sheet_view, SHEET)
    assert det is not None
    few = BoardDetection(det.image_points_px[:5], det.object_points_mm[:5], det.point_ids[:5])
    with pytest.raises(CalibrationError, match="only 5 sheet points"):
        fit_belt_pose(few, CameraIntrinsics.of(mount), PLACE)


@needs_data
def test_real_charuco_photo_fits_a_plane_to_sub_millimetre() -> None:
    """choriginal.jpg: a real ChArUco board (40 mm squares), with OpenCV's reference lens for that camera."""
    fs = cv2.FileStorage(str(DATA / "opencv_aruco_charuco" / "tutorial_camera_charuco.yml"), cv2.FILE_STORAGE_READ)
    k = fs.getNode("camera_matrix").mat()
    d = fs.getNode("distortion_coefficients").mat().ravel()
    fs.release()
    lens = CameraIntrinsics(640, 480, k[0, 0], k[1, 1], k[0, 2], k[1, 2], tuple(float(v) for v in d[:5]))  # type: ignore[arg-type]
    board = BoardSpec("charuco", 5, 7, 40.0, 20.0, dictionary="DICT_6X6_250")
    det = detect_board(cv2.imread(str(DATA / "opencv_aruco_charuco" / "choriginal.jpg")), board)
    assert det is not None
    fit = fit_belt_pose(det, lens, SheetPlacement(), BeltThresholds(min_coverage=0.05))
    assert fit.rms_mm < 0.5
    assert fit.passed
