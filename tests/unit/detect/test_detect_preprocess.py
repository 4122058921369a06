"""Letterbox preprocessing and output postprocessing (pure, no model)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sorter.detect.pipeline import class_map
from sorter.detect.postprocess import to_detections
from sorter.detect.preprocess import Preprocessor, letterbox_image, letterbox_params
from sorter.detect.spec import ModelSpec
from sorter.errors import ConfigError


def test_letterbox_of_a_720p_frame_keeps_aspect_and_centres() -> None:
    lb = letterbox_params(1280, 720, 320, 192)
    assert lb.scale == pytest.approx(0.25)
    assert (lb.new_w_px, lb.new_h_px) == (320, 180)
    assert (lb.pad_x_px, lb.pad_y_px) == (0, 6)


@given(
    st.integers(64, 4000),
    st.integers(64, 4000),
    st.sampled_from([(320, 192), (384, 224), (448, 256)]),
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_box_mapping_round_trips(w: int, h: int, dst: tuple[int, int], a: float, b: float, c: float, d: float) -> None:
    lb = letterbox_params(w, h, *dst)
    x1, x2 = sorted((a * (w - 1), b * (w - 1)))  # pixel-centre coordinates: the image spans 0 .. w - 1
    y1, y2 = sorted((c * (h - 1), d * (h - 1)))
    box = np.array([[x1, y1, x2, y2]], np.float32)
    back = lb.to_source(lb.to_input(box))
    np.testing.assert_allclose(back, box, atol=1e-2 * max(w, h) / 1000 + 1e-3)


def test_preprocessor_places_pixels_where_the_mapping_says() -> None:
    spec = ModelSpec(input_w_px=320, input_h_px=192)
    img = np.zeros((720, 1280, 3), np.uint8)
    img[200:400, 600:800] = (255, 0, 0)  # a blue square in BGR
    tensor, lb = Preprocessor(spec)(img)
    assert tensor.shape == (1, 3, 192, 320) and tensor.dtype == np.float32
    (bx1, by1, bx2, by2) = lb.to_input(np.array([[600, 200, 800, 400]], np.float32))[0]
    inside = tensor[0, :, int(by1) + 2 : int(by2) - 2, int(bx1) + 2 : int(bx2) - 2]
    assert np.allclose(inside[0], 1.0) and np.allclose(inside[1:], 0.0)  # channel order kept (BGR)
    assert np.allclose(tensor[0, :, 0, 0], spec.pad_value / 255.0)  # top padding row
    assert np.allclose(tensor[0, :, 10, 0], 0.0)  # black image area


@pytest.mark.parametrize(("w", "h", "dst"), [(1280, 720, (384, 224)), (1265, 1080, (384, 224)), (1920, 1080, (320, 192))])
def test_mapping_follows_the_pixels_of_the_resize(w: int, h: int, dst: tuple[int, int]) -> None:
    """A blob's centroid after the resize lands where ``to_input`` maps its centre (and back)."""
    cx, cy, sigma = w / 3 + 0.25, h / 2 - 0.4, 40.0  # a smooth blob, so the resize's samples keep its centroid
    ys, xs = np.indices((h, w), dtype=np.float64)
    blob = 255.0 * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
    img = np.repeat(np.round(blob).astype(np.uint8)[:, :, None], 3, axis=2)
    canvas, lb = letterbox_image(img, *dst, 0)
    lum = canvas[:, :, 0].astype(np.float64)
    yi, xi = np.indices(lum.shape)
    cx_in, cy_in = (lum * xi).sum() / lum.sum(), (lum * yi).sum() / lum.sum()
    mx, my = lb.to_input(np.array([[cx, cy, cx, cy]], np.float32))[0, :2]
    assert abs(mx - cx_in) < 0.05 and abs(my - cy_in) < 0.05  # the old mapping (source * scale) was 0.3-0.4 px off
    back = lb.to_source(np.array([[cx_in, cy_in, cx_in, cy_in]], np.float32))[0, :2]
    assert abs(back[0] - cx) < 0.05 / lb.scale and abs(back[1] - cy) < 0.05 / lb.scale


def test_letterbox_rejects_an_empty_frame() -> None:
    with pytest.raises(ValueError, match="rendered pixels"):
        letterbox_image(np.zeros((0, 0, 3), np.uint8), 320, 192, 114)


def test_postprocess_thresholds_maps_and_sorts() -> None:
    lb = letterbox_params(1280, 720, 320, 192)
    boxes = np.array([[[10, 16, 50, 56], [100, 100, 140, 120], [0, 0, 0.1, 0.1], [300, 180, 330, 200]]], np.float32)
    scores = np.array([[0.5, 0.9, 0.95, 0.2]], np.float32)
    classes = np.array([[1, 2, 3, 4]], np.int32)
    det = to_detections(boxes, scores, classes, lb, min_score=0.3, num_classes=6)
    # the tiny box collapses below a pixel in the frame and is dropped; 0.2 is under the threshold
    assert len(det) == 2
    np.testing.assert_array_equal(det.class_ids, [2, 1])
    # ((x + 0.5) / 0.25 - 0.5, (y - 6 + 0.5) / 0.25 - 0.5)
    np.testing.assert_allclose(det.boxes_px[0], [401.5, 377.5, 561.5, 457.5])
    assert det.boxes_px.dtype == np.float32 and det.class_ids.dtype == np.int32


def test_postprocess_clips_to_the_frame_and_drops_unknown_classes() -> None:
    lb = letterbox_params(1280, 720, 320, 192)
    boxes = np.array([[-20, -20, 40, 40], [10, 10, 60, 60]], np.float32)
    det = to_detections(boxes, np.array([0.9, 0.8]), np.array([0, 9]), lb, 0.3, num_classes=6)
    assert len(det) == 1
    assert det.boxes_px[0, 0] == 0.0 and det.boxes_px[0, 1] == 0.0


def test_class_map_by_name_and_unknown_class_is_a_config_error() -> None:
    np.testing.assert_array_equal(class_map(("b", "a"), ("a", "b", "c")), [1, 0])
    with pytest.raises(ConfigError, match="does not know"):
        class_map(("a", "z"), ("a", "b"))


def test_model_spec_round_trips_and_validates() -> None:
    spec = ModelSpec(input_w_px=384, input_h_px=224, width=12, top_k=50)
    assert ModelSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="multiples of 32"):
        ModelSpec(input_w_px=300)
    with pytest.raises(ValueError, match="newer sorter"):
        ModelSpec.from_json('{"input_w_px": 320, "wings": 2}')
