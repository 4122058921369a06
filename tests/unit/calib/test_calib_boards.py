"""Board definitions, detection and the diagnosis of missing boards, on rendered and real images."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sorter.calib.board_hints import diagnose_missing_board, larger_chessboard
from sorter.calib.boards import BoardSpec, detect_board, detect_markers, render_board
from sorter.errors import CalibrationError

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "calib"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared calibration data (../shared/data/calib) not present")

CHARUCO = BoardSpec("charuco", 5, 7, 40.0, 20.0, dictionary="DICT_6X6_250")
GRID = BoardSpec("aruco_grid", 4, 3, marker_mm=30.0, separation_mm=10.0, dictionary="DICT_4X4_50")
CHESS = BoardSpec("chessboard", 9, 6, 25.0)


def _grey_bgr(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[:, :, None], 3, axis=2)


@pytest.mark.parametrize("spec", [CHARUCO, GRID, CHESS], ids=["charuco", "aruco_grid", "chessboard"])
def test_rendered_board_is_detected_where_it_was_drawn(spec: BoardSpec) -> None:
    board = render_board(spec, px_per_mm=4.0, margin_mm=15.0)
    det = detect_board(_grey_bgr(board.image), spec)
    assert det is not None
    expected = board.board_to_image_px(det.object_points_mm[:, :2])
    if spec.type == "chessboard":
        # chessboard corners are numbered from (0, 0) at the first inner corner, one square in from the pattern corner
        expected = board.board_to_image_px(det.object_points_mm[:, :2] + spec.square_mm)
        if np.abs(det.image_points_px - expected).max() > 1.0:  # OpenCV may start from the opposite corner
            expected = expected[::-1]
    assert np.abs(det.image_points_px - expected).max() < 0.3
    assert len(np.unique(det.point_ids)) == len(det)


def test_board_spec_rejects_impossible_boards_with_a_fix() -> None:
    with pytest.raises(CalibrationError, match="marker size"):
        BoardSpec("charuco", 5, 7, 40.0, 0.0)
    with pytest.raises(CalibrationError, match="smaller than the square"):
        BoardSpec("charuco", 5, 7, 40.0, 45.0)
    with pytest.raises(CalibrationError, match="dictionary"):
        BoardSpec("charuco", 5, 7, 40.0, 20.0, dictionary="DICT_9X9_1")
    assert BoardSpec.from_dict(CHARUCO.to_dict()) == CHARUCO


def test_markers_from_another_dictionary_are_named() -> None:
    printed = BoardSpec("charuco", 5, 7, 40.0, 20.0, dictionary="DICT_4X4_50")
    img = _grey_bgr(render_board(printed, 2.5, 10.0).image)
    assert detect_board(img, CHARUCO) is None
    msg = diagnose_missing_board(img, CHARUCO)
    assert "DICT_4X4_50" in msg and "--dictionary" in msg


def test_wrong_chessboard_size_is_diagnosed() -> None:
    img = _grey_bgr(render_board(CHESS, 4.0, 15.0).image)
    too_big = BoardSpec("chessboard", 10, 6, 25.0)
    assert detect_board(img, too_big) is None
    assert "--cols 9 --rows 6" in diagnose_missing_board(img, too_big)
    whole = detect_board(img, CHESS)
    assert whole is not None and larger_chessboard(img, whole, CHESS) is None


@needs_data
def test_a_grid_smaller_than_the_real_board_is_caught() -> None:
    img = cv2.imread(str(DATA / "opencv_stereo_chessboard" / "left03.jpg"))
    too_small = BoardSpec("chessboard", 7, 6, 25.0)
    part = detect_board(img, too_small)
    assert part is not None  # OpenCV happily finds a 7x6 grid in the 9x6 board ...
    assert larger_chessboard(img, part, too_small) == (9, 6)  # ... and this check finds the real size


def test_blank_image_says_check_the_camera() -> None:
    assert "uniform" in diagnose_missing_board(np.full((100, 100, 3), 128, np.uint8), CHESS)


def test_blur_raises_the_edge_width() -> None:
    img = _grey_bgr(render_board(CHARUCO, 4.0, 10.0).image)
    sharp = detect_board(img, CHARUCO)
    blurred = detect_board(cv2.GaussianBlur(img, (0, 0), 2.5), CHARUCO)
    assert sharp is not None and blurred is not None
    assert blurred.edge_width_px > sharp.edge_width_px + 2.0


@needs_data
@pytest.mark.parametrize("name", ["singlemarkersoriginal.jpg", "choriginal.jpg"])
def test_real_marker_photos_match_opencv_gold_corners(name: str) -> None:
    gold = json.loads((DATA / "opencv_aruco_charuco" / "gold_marker_corners.json").read_text())["images"][name]
    img = cv2.imread(str(DATA / "opencv_aruco_charuco" / name), cv2.IMREAD_GRAYSCALE)
    corners, ids = detect_markers(img, gold["dictionary"].split(";")[0])
    assert sorted(ids.tolist()) == sorted(int(k) for k in gold["markers"])
    for mid, quad in zip(ids, corners, strict=True):
        # gold corners are unrefined integer pixels; ours are refined to sub-pixel
        assert np.abs(quad - np.array(gold["markers"][str(mid)])).max() < 1.5


@needs_data
def test_real_charuco_photo_gives_all_corners() -> None:
    img = cv2.imread(str(DATA / "opencv_aruco_charuco" / "img_00.jpg"))
    det = detect_board(img, CHARUCO)
    assert det is not None
    assert len(det) == 24 and len(det.marker_ids) == 17
    assert 0.5 < det.edge_width_px < 6.0
