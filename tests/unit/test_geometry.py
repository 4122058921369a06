"""Pixel <-> belt geometry: round trips, agreement with OpenCV, box projection."""

from __future__ import annotations

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sorter.geometry import CameraModel, boxes_to_belt, rodrigues, rotation_to_rvec

CAM = CameraModel.looking_down(
    1280, 720, hfov_deg=60.0, height_mm=1100.0, centre_x_mm=600.0, tilt_deg=8.0, dist=(-0.04, 0.01, 0.001, -0.0005, 0.0)
)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1200.0), st.floats(-300.0, 300.0))
def test_belt_pixel_round_trip(x_mm: float, y_mm: float) -> None:
    px = CAM.belt_to_pixel(np.array([[x_mm, y_mm]]))
    back = CAM.pixel_to_belt(px)
    assert np.allclose(back, [[x_mm, y_mm]], atol=1e-3)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3))
def test_rodrigues_round_trip(r: list[float]) -> None:
    rv = np.array(r)
    rot = rodrigues(rv)
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-9)
    assert np.allclose(rodrigues(rotation_to_rvec(rot)), rot, atol=1e-7)


def test_projection_matches_opencv() -> None:
    pts = np.array([[0.0, -300.0, 0.0], [600.0, 0.0, 0.0], [1150.0, 250.0, 0.0], [300.0, 120.0, 0.0]])
    ref, _ = cv2.projectPoints(pts, np.array(CAM.rvec), np.array(CAM.tvec_mm), CAM.k_matrix, np.array(CAM.dist))
    ours = CAM.belt_to_pixel(pts[:, :2])
    assert np.allclose(ours, ref.reshape(-1, 2), atol=1e-6)


def test_undistortion_matches_opencv() -> None:
    px = np.array([[10.0, 10.0], [640.0, 360.0], [1270.0, 700.0], [100.0, 650.0]])
    ref = cv2.undistortPoints(px.reshape(-1, 1, 2), CAM.k_matrix, np.array(CAM.dist)).reshape(-1, 2)
    xyd = np.column_stack([(px[:, 0] - CAM.cx) / CAM.fx, (px[:, 1] - CAM.cy) / CAM.fy])
    assert np.allclose(CAM.undistort_normalised(xyd), ref, atol=1e-5)


def test_objects_move_down_the_image_and_tilt_looks_downstream() -> None:
    flat = CameraModel.looking_down(1280, 720, 60.0, 1100.0, 600.0)
    a, b = flat.belt_to_pixel(np.array([[600.0, 0.0], [600.0, 100.0]]))
    assert b[1] > a[1]
    assert np.allclose(a, [flat.cx, flat.cy])
    _, _, y0, y1 = CAM.view_extent_mm()
    assert (y0 + y1) / 2 > 100.0  # the view centre moved downstream


def test_boxes_to_belt_recovers_centre_and_extent() -> None:
    flat = CameraModel.looking_down(1280, 720, 60.0, 1100.0, 600.0)
    corners = flat.belt_to_pixel(np.array([[500.0, -50.0], [580.0, 150.0]]))
    box = np.array([[corners[0, 0], corners[0, 1], corners[1, 0], corners[1, 1]]])
    x, y, length, width = boxes_to_belt(flat, box)
    assert np.allclose([x[0], y[0], length[0], width[0]], [540.0, 50.0, 200.0, 80.0], atol=1e-6)
    e = boxes_to_belt(flat, np.zeros((0, 4)))
    assert all(v.shape == (0,) for v in e)
