"""The detector's region of interest: the belt's footprint from a camera model, the crop in preprocessing, and boxes
mapped back to whole-frame pixels (pure, no model)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sorter.detect.postprocess import to_detections
from sorter.detect.preprocess import Preprocessor, letterbox_params
from sorter.detect.roi import Roi, belt_roi, explicit_roi
from sorter.detect.spec import ModelSpec
from sorter.errors import ConfigError
from sorter.geometry import CameraModel

SPEC = ModelSpec(input_w_px=384, input_h_px=224)


def _wide_camera(w_px: int = 1280, h_px: int = 720, **kw: float) -> CameraModel:
    """70 degrees, 1400 mm above a 1200 mm belt: the view is about 1960 mm wide, much more than the belt."""
    return CameraModel.looking_down(w_px, h_px, hfov_deg=70.0, height_mm=1400.0, centre_x_mm=600.0, **kw)  # type: ignore[arg-type]


def test_belt_region_of_a_straight_down_camera_is_where_the_belt_edges_project() -> None:
    cam = _wide_camera()
    f_px = 640.0 / math.tan(math.radians(35.0))
    left_px = cam.cx + f_px * (-50.0 - 600.0) / 1400.0  # belt edge x = 0 minus the 50 mm margin
    right_px = cam.cx + f_px * (1250.0 - 600.0) / 1400.0
    exact = belt_roi(cam, 1200.0, 50.0, step_px=1)
    assert exact.x0_px == pytest.approx(left_px, abs=2) and exact.x1_px == pytest.approx(right_px, abs=2)
    assert (exact.y0_px, exact.y1_px) == (0, 720)  # the whole view along the belt
    coarse = belt_roi(cam, 1200.0, 50.0)  # the default sampling grows the rectangle, never cuts the belt
    assert left_px - 8 <= coarse.x0_px <= left_px and right_px <= coarse.x1_px <= right_px + 8
    assert 0.6 < coarse.share < 0.72 and not coarse.is_full
    assert "belt 1200 mm + 50 mm margins" in coarse.describe() and "66 %" in coarse.describe()


def test_belt_region_holds_every_belt_point_the_camera_sees_under_distortion_and_tilt() -> None:
    cam = _wide_camera(1920, 1080, tilt_deg=12.0, dist=(-0.12, 0.03, 0.001, -0.001, 0.0))
    roi = belt_roi(cam, 1200.0, 30.0)
    x_mm, y_mm = np.meshgrid(np.linspace(-30.0, 1230.0, 200), np.linspace(-2000.0, 2000.0, 400))
    uv = cam.belt_to_pixel(np.column_stack([x_mm.ravel(), y_mm.ravel()]))
    seen = (uv[:, 0] >= 0) & (uv[:, 0] <= 1919) & (uv[:, 1] >= 0) & (uv[:, 1] <= 1079)
    assert seen.sum() > 10_000
    inside = (uv[:, 0] >= roi.x0_px) & (uv[:, 0] < roi.x1_px) & (uv[:, 1] >= roi.y0_px) & (uv[:, 1] < roi.y1_px)
    assert inside[seen].all()
    # and it is tight: the columns just outside it look at the floor beyond the margin
    beside = cam.pixel_to_belt(np.array([[roi.x0_px - 12.0, 540.0], [roi.x1_px + 12.0, 540.0]]))
    assert beside[0, 0] < -30.0 and beside[1, 0] > 1230.0


def test_a_camera_that_does_not_see_the_belt_is_a_config_error() -> None:
    cam = CameraModel.looking_down(1280, 720, hfov_deg=30.0, height_mm=1000.0, centre_x_mm=5000.0)
    with pytest.raises(ConfigError, match=r"sees no part of the belt.*detector.roi.mode: full"):
        belt_roi(cam, 1200.0, 50.0)


def test_explicit_region_must_stay_inside_the_image() -> None:
    roi = explicit_roi((100, 50, 1180, 700), 1280, 720)
    assert (roi.w_px, roi.h_px, roi.source) == (1080, 650, "detector.roi.px")
    with pytest.raises(ConfigError, match=r"detector.roi.px = \[100, 50, 1300, 700\] leaves the 1280x720 px frame.*1280"):
        explicit_roi((100, 50, 1300, 700), 1280, 720)
    with pytest.raises(ValueError, match="empty or leaves"):
        Roi(10, 10, 10, 20, 100, 100)


def test_crop_is_a_view_and_a_frame_of_another_size_is_refused() -> None:
    roi = Roi(100, 40, 500, 300, 640, 360, "test")
    image = np.zeros((360, 640, 3), np.uint8)
    crop = roi.crop(image)
    assert crop.shape == (260, 400, 3) and np.shares_memory(crop, image)
    with pytest.raises(ValueError, match=r"frame is 1280x720 px but .*made for 640x360; set camera.width_px"):
        roi.crop(np.zeros((720, 1280, 3), np.uint8))


def test_preprocessor_crops_to_the_region_and_maps_boxes_to_frame_pixels() -> None:
    image = np.zeros((1080, 1920, 3), np.uint8)
    image[500:600, 900:1100] = (0, 0, 255)  # red object on the belt, inside the region
    image[100:200, 50:250] = (255, 255, 255)  # something off the belt, outside it
    roi = Roi(400, 0, 1600, 1080, 1920, 1080, "test")
    tensor, lb = Preprocessor(SPEC, roi)(image)
    assert (lb.offset_x_px, lb.offset_y_px, lb.src_w_px, lb.src_h_px) == (400, 0, 1200, 1080)
    x1, y1, x2, y2 = lb.to_input(np.array([[900, 500, 1100, 600]], np.float32))[0]
    red = tensor[0, :, int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2]
    assert np.allclose(red[2], 1.0) and np.allclose(red[:2], 0.0)
    assert not (tensor[0].min(axis=0) > 0.99).any()  # the white patch off the belt is not in the network input
    box = np.array([[900, 500, 1100, 600]], np.float32)
    np.testing.assert_allclose(lb.to_source(lb.to_input(box)), box, atol=0.5)


def test_a_frame_of_another_size_is_preprocessed_whole_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    """Fail safe at run time: the loop reports the camera's wrong size; the detector keeps looking meanwhile."""
    pre = Preprocessor(SPEC, Roi(100, 40, 500, 300, 640, 360, "detector.roi.px"))
    with caplog.at_level(logging.WARNING, logger="sorter.detect.preprocess"):
        for _ in range(3):
            _, lb = pre(np.zeros((720, 1280, 3), np.uint8))
    assert (lb.offset_x_px, lb.offset_y_px, lb.src_w_px, lb.src_h_px) == (0, 0, 1280, 720)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1
    assert "frame is 1280x720 px but the detector's region (detector.roi.px) was made for 640x360" in warned[0]
    _, lb = pre(np.zeros((360, 640, 3), np.uint8))  # frames of the right size are cropped again
    assert (lb.offset_x_px, lb.src_w_px) == (100, 400)


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(st.integers(0, 900), st.integers(0, 500), st.integers(10, 1020), st.integers(10, 580)),
    st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1),
)
def test_box_round_trip_through_crop_and_letterbox(
    r: tuple[int, int, int, int], a: float, b: float, c: float, d: float
) -> None:
    x0, y0, w, h = r
    roi = Roi(x0, y0, min(1920, x0 + w), min(1080, y0 + h), 1920, 1080)
    lb = letterbox_params(roi.w_px, roi.h_px, SPEC.input_w_px, SPEC.input_h_px).with_offset(roi.x0_px, roi.y0_px)
    # pixel-centre coordinates: the crop spans x0 .. x0 + w - 1
    bx1, bx2 = sorted((roi.x0_px + a * (roi.w_px - 1), roi.x0_px + b * (roi.w_px - 1)))
    by1, by2 = sorted((roi.y0_px + c * (roi.h_px - 1), roi.y0_px + d * (roi.h_px - 1)))
    box = np.array([[bx1, by1, bx2, by2]], np.float32)
    np.testing.assert_allclose(lb.to_source(lb.to_input(box)), box, atol=0.01)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(*[st.floats(-500, 900) for _ in range(4)]), min_size=1, max_size=30))
def test_no_detection_can_lie_outside_the_region(raw: list[tuple[float, float, float, float]]) -> None:
    """Whatever the network outputs (boxes off the input, in the padding, huge), every box lands inside the region."""
    roi = Roi(640, 200, 1400, 900, 1920, 1080)
    lb = letterbox_params(roi.w_px, roi.h_px, SPEC.input_w_px, SPEC.input_h_px).with_offset(roi.x0_px, roi.y0_px)
    boxes = np.array([[min(p, q), min(s, t), max(p, q), max(s, t)] for p, s, q, t in raw], np.float32)[None]
    n = boxes.shape[1]
    det = to_detections(boxes, np.full((1, n), 0.9), np.zeros((1, n), np.int32), lb, 0.3, 6)
    assert (det.boxes_px[:, 0] >= roi.x0_px).all() and (det.boxes_px[:, 2] <= roi.x1_px).all()
    assert (det.boxes_px[:, 1] >= roi.y0_px).all() and (det.boxes_px[:, 3] <= roi.y1_px).all()
