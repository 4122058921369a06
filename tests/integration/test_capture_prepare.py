"""Preprocessing in the capture thread: the shipped model through ONNX Runtime gives the same detections from a
frame prepared ahead of time as from the frame itself; a frame prepared for another region or another model is
made again, never used; a preparation that fails lets the frame through unprepared; and a live simulated line
prepares its frames in the render thread and its loop uses them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sorter.config import Config, DetectorConfig
from sorter.detect.pipeline import EngineDetector, PreparedInput
from sorter.detect.registry import create_detector
from sorter.detect.roi import Roi
from sorter.entities import MATERIAL_CLASSES, Detections, Frame
from sorter.runtime.capture_prep import CapturePreparer, attach_preparer
from sorter.runtime.line import build_line
from sorter.runtime.loops import run_line
from sorter.runtime.preflight import load_line_config
from sorter.sim.frame_source import SimFrameSource
from sorter.train.synth import SynthDataset, SynthRecipe

FRAMES = SynthDataset(SynthRecipe(n_images=4, seed=1_000_004))
CFG = Config(detector=DetectorConfig(type="onnxruntime", min_score=0.4))


def _frame(i: int) -> Frame:
    return Frame(image=FRAMES[i].image, t_capture_ns=i, s_capture_mm=0.0, frame_index=i)


def _same(a: Detections, b: Detections) -> None:
    np.testing.assert_array_equal(a.boxes_px, b.boxes_px)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)


@pytest.fixture(scope="module")
def detector() -> Iterator[EngineDetector]:
    det = create_detector(CFG, MATERIAL_CLASSES)
    assert isinstance(det, EngineDetector)
    yield det
    det.close()


def test_a_prepared_frame_gives_the_detections_of_the_frame_itself(detector: EngineDetector) -> None:
    direct = [detector.detect(_frame(i)) for i in range(len(FRAMES))]
    assert sum(len(d) for d in direct) > 0  # the frames hold objects the model finds
    prepared = [detector.prepare(_frame(i)) for i in range(len(FRAMES))]
    # each prepared frame owns its input: preparing the next frames did not overwrite the first one's
    tensors = [f.prepared.tensor for f in prepared if isinstance(f.prepared, PreparedInput)]
    assert len(tensors) == len(FRAMES) and len({id(t) for t in tensors}) == len(FRAMES)
    assert not np.array_equal(tensors[0], tensors[1])
    used = detector.prepared_used
    for f, d in zip(prepared, direct, strict=True):
        _same(detector.detect(f), d)
    assert detector.prepared_used == used + len(FRAMES)


def test_a_frame_prepared_for_another_region_or_model_is_made_again(detector: EngineDetector) -> None:
    h, w = FRAMES[0].image.shape[:2]
    roi = Roi(w // 4, 0, w, h, w, h, "test band")
    early = detector.prepare(_frame(0))  # prepared with the whole frame
    detector.set_roi(roi)
    try:
        stale = detector.prepared_stale
        _same(detector.detect(early), detector.detect(_frame(0)))  # what the region gives, not the whole frame
        assert detector.prepared_stale == stale + 1
        for b in detector.detect(early).boxes_px:
            assert b[0] >= roi.x0_px  # cropped: nothing left of the region
    finally:
        detector.set_roi(None)
    other = create_detector(CFG, MATERIAL_CLASSES)
    assert isinstance(other, EngineDetector)
    try:
        mine = detector.prepare(_frame(1))
        _same(other.detect(mine), other.detect(_frame(1)))
        assert other.prepared_used == 0 and other.prepared_stale == 1
    finally:
        other.close()


class _Holder:
    def __init__(self, detector: object) -> None:
        self.detector = detector


def test_a_failed_preparation_lets_the_frame_through_and_is_reported_once(
    detector: EngineDetector, caplog: pytest.LogCaptureFixture
) -> None:
    prep = CapturePreparer(_Holder(detector))
    grey = Frame(image=np.zeros((48, 64), np.uint8), t_capture_ns=0, s_capture_mm=0.0, frame_index=0)  # not BGR
    with caplog.at_level(logging.WARNING, logger="sorter.runtime.capture_prep"):
        out = [prep(grey), prep(grey)]
    assert all(f is grey for f in out)  # unprepared: the loop's detect raises the real error
    assert prep.failures == 2 and prep.prepared == 0
    assert sum("capture thread failed" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector.detect(grey)
    good = prep(_frame(2))
    assert isinstance(good.prepared, PreparedInput) and prep.prepared == 1
    s = prep.summary()
    assert s["frames_prepared"] == 1 and s["failures"] == 2 and s["preprocess_ms"]["p50"] > 0


def test_only_a_detector_that_reads_pixels_gets_a_preparer(detector: EngineDetector) -> None:
    class NoThread:
        pass

    class Source:
        def __init__(self) -> None:
            self.prepare: object = None

        def set_prepare(self, fn: object) -> None:
            self.prepare = fn

    src = Source()
    assert attach_preparer(NoThread(), _Holder(detector), True) is None
    assert attach_preparer(src, _Holder(detector), False) is None and src.prepare is None
    oracle = create_detector(Config(detector=DetectorConfig(type="oracle")), MATERIAL_CLASSES)
    assert attach_preparer(src, _Holder(oracle), True) is None and src.prepare is None
    prep = attach_preparer(src, _Holder(detector), True)
    assert prep is not None and src.prepare is prep


def test_the_simulated_camera_prepares_frames_in_its_render_thread(detector: EngineDetector) -> None:
    cfg = load_line_config(None, ["sim.seed=3"])
    line = build_line(cfg, fast=False)
    try:
        stop = threading.Event()
        source = line.plant.live_source(stop, lambda _n: None)
        assert isinstance(source, SimFrameSource)
        threads: set[str] = set()

        def prepare(f: Frame) -> Frame:
            threads.add(threading.current_thread().name)
            return detector.prepare(f)

        source.set_prepare(prepare)
        source.start()
        try:
            frame = None
            for _ in range(100):
                frame = source.latest(1.0)
                if frame is not None:
                    break
        finally:
            source.close()
        assert frame is not None and isinstance(frame.prepared, PreparedInput)
        assert threads == {"capture-sim"}
        _same(detector.detect(frame), detector.detect(Frame(frame.image, 0, 0.0, 0)))
    finally:
        line.close()


def test_a_live_line_infers_on_frames_its_capture_thread_prepared(tmp_path: Path) -> None:
    cfg = load_line_config(None, ["sim.seed=5", "runtime.overload_degrades=false"])
    summary = run_line(build_line(cfg, fast=False), 3.0, False, threading.Event())
    cap = summary["capture_preprocess"]
    assert cap["failures"] == 0 and cap["frames_prepared"] > 0
    # every frame the loop processed was prepared for it (a frame is prepared before it can be taken)
    assert cap["prepared_used"] == summary["frames"] and cap["prepared_stale"] == 0
    assert cap["preprocess_ms"]["p50"] > 0
    off = load_line_config(None, ["sim.seed=5", "runtime.overload_degrades=false", "runtime.prepare_in_capture=false"])
    summary_off = run_line(build_line(off, fast=False), 1.0, False, threading.Event())
    assert "capture_preprocess" not in summary_off and summary_off["frames"] > 0
