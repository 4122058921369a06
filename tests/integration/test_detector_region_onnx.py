"""The shipped model through ONNX Runtime with a region of interest: boxes land inside the region, in whole-frame
pixels, and match the uncropped detector's wherever the object lies inside the region; the line wires the region
of ``detector.roi`` into its detector."""

from __future__ import annotations

import numpy as np
import pytest

from sorter.config import Config, DetectorConfig, load_config
from sorter.detect.pipeline import EngineDetector
from sorter.detect.registry import create_detector
from sorter.detect.roi import Roi
from sorter.entities import MATERIAL_CLASSES, Detections, Frame
from sorter.runtime.line import build_line
from sorter.runtime.plant import detector_roi
from sorter.train.evaluate import _iou_matrix
from sorter.train.synth import SynthDataset, SynthRecipe

#: rendered frames from a seed no training set used (the held-out base seed + 1)
FRAMES = SynthDataset(SynthRecipe(n_images=16, seed=1_000_004))
CFG = Config(detector=DetectorConfig(type="onnxruntime", min_score=0.4))


def _inside(det: Detections, roi: Roi, margin_px: float = 0.0) -> np.ndarray:
    b = det.boxes_px
    return (  # type: ignore[no-any-return]
        (b[:, 0] >= roi.x0_px + margin_px) & (b[:, 2] <= roi.x1_px - margin_px)
        & (b[:, 1] >= roi.y0_px + margin_px) & (b[:, 3] <= roi.y1_px - margin_px)
    )


def _found(det: Detections, box: np.ndarray, cls: int) -> int:
    """Index of the detection of ``cls`` overlapping ``box`` best with IoU >= 0.5, else -1."""
    if not len(det):
        return -1
    iou = _iou_matrix(box[None], det.boxes_px)[0]
    iou[det.class_ids != cls] = 0.0
    j = int(np.argmax(iou))
    return j if iou[j] >= 0.5 else -1


@pytest.fixture(scope="module")
def whole() -> list[Detections]:
    det = create_detector(CFG, MATERIAL_CLASSES)
    try:
        return [det.detect(Frame(image=FRAMES[i].image, t_capture_ns=0, s_capture_mm=0.0, frame_index=i))
                for i in range(len(FRAMES))]
    finally:
        det.close()


@pytest.mark.parametrize(
    "roi",
    [Roi(200, 0, 1080, 720, 1280, 720, "belt across"), Roi(0, 100, 1280, 620, 1280, 720, "band along")],
    ids=lambda r: r.source,
)
def test_cropped_detections_lie_in_the_region_and_match_the_whole_frame_ones(roi: Roi, whole: list[Detections]) -> None:
    det = create_detector(CFG, MATERIAL_CLASSES, roi)
    assert isinstance(det, EngineDetector) and det.roi is roi  # set after the blank-frame check at the input size
    agree: list[float] = []  # IoU of the cropped box with the whole-frame box of the same object
    try:
        for i, full in enumerate(whole):
            s = FRAMES[i]
            got = det.detect(Frame(image=s.image, t_capture_ns=0, s_capture_mm=0.0, frame_index=i))
            assert _inside(got, roi).all(), got.boxes_px  # whole-frame pixels, never outside the region
            for box, cls in zip(s.boxes_px[~s.ignore], s.class_ids[~s.ignore], strict=True):
                inside = box[0] >= roi.x0_px and box[2] <= roi.x1_px and box[1] >= roi.y0_px and box[3] <= roi.y1_px
                k = _found(full, box, int(cls))
                if not inside or k < 0:  # only objects wholly in the region that the whole-frame detector finds
                    continue
                j = _found(got, box, int(cls))
                assert j >= 0, (i, box, cls)
                agree.append(float(_iou_matrix(full.boxes_px[k : k + 1], got.boxes_px[j : j + 1])[0, 0]))
    finally:
        det.close()
    # the same boxes up to the network's own spread (the letterbox scale and the context at the region's edge differ)
    assert len(agree) >= 10 and min(agree) >= 0.7 and float(np.median(agree)) >= 0.9, agree


def test_the_line_gives_its_detector_the_configured_region() -> None:
    cfg = load_config(None, ["detector.roi.margin_mm=0"])  # the simulated view is wider than the bare belt
    line = build_line(cfg, fast=True)
    try:
        roi = line.detector.roi  # type: ignore[attr-defined]
        assert roi == detector_roi(cfg) and 0.9 < roi.share < 0.97
    finally:
        line.close()
