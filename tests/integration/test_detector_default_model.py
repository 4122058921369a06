"""The shipped default model on rendered frames, through every CPU backend and the public factories."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from sorter.config import Config, DetectorConfig
from sorter.detect.golden import compare, load_golden
from sorter.detect.model_files import default_model_path, golden_path, read_model_info, variant_path
from sorter.detect.onnxruntime_backend import OrtEngine
from sorter.detect.onnxruntime_backend import create as create_ort
from sorter.detect.preprocess import to_tensor
from sorter.entities import MATERIAL_CLASSES, Detections, Frame
from sorter.train.evaluate import _iou_matrix
from sorter.train.synth import SynthDataset, SynthRecipe

MODELS = Path(default_model_path()).parent
#: A handful of frames from a seed no training set used (the held-out base seed + 1).
FRAMES = SynthDataset(SynthRecipe(n_images=8, seed=1_000_004))


@pytest.fixture(scope="module")
def samples() -> list:  # type: ignore[type-arg]
    return [FRAMES[i] for i in range(len(FRAMES))]


def test_default_model_is_small_and_documents_itself() -> None:
    path = default_model_path()
    info = read_model_info(path)
    assert info.spec.class_names == MATERIAL_CLASSES
    assert info.precision == "fp32"
    for key in ("sorter.seed", "sorter.train_command", "sorter.data_recipe"):
        assert info.metadata.get(key), key
    for p in ("fp32", "fp16", "int8"):
        assert variant_path(path, p).stat().st_size < 6_000_000
    metrics = json.loads((MODELS / "metrics.json").read_text())
    # the metrics file describes exactly the shipped files, and its headline numbers are its FP32 held-out ones
    for p in ("fp32", "fp16", "int8"):
        assert metrics["files"][p]["bytes"] == variant_path(path, p).stat().st_size, p
        assert 0.0 < metrics["heldout"][p]["map"] < metrics["heldout"][p]["map50"] <= 1.0, p
    assert (metrics["map50"], metrics["map"]) == (metrics["heldout"]["fp32"]["map50"], metrics["heldout"]["fp32"]["map"])
    assert set(metrics["heldout"]["fp32"]["per_class"]) == set(MATERIAL_CLASSES)
    readme = (MODELS / "README.md").read_text()
    assert "sorter train" in readme and "seed" in readme


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_onnxruntime_reproduces_the_golden_outputs(precision: str) -> None:
    golden = load_golden(golden_path(default_model_path()))
    got = OrtEngine(variant_path(default_model_path(), precision)).infer(to_tensor(golden.canvas))
    assert compare(golden.outputs[precision], got, precision) == []
    assert (golden.outputs[precision][1] >= 0.3).sum() >= 2  # the golden frame holds real detections


def _match(samples: list, detect) -> tuple[float, float, float]:  # type: ignore[no-untyped-def, type-arg]
    tp = fp = fn = same_class = 0
    for s in samples:
        det: Detections = detect(Frame(image=s.image, t_capture_ns=0, s_capture_mm=0.0, frame_index=0))
        gt = s.boxes_px[~s.ignore]
        gcls = s.class_ids[~s.ignore]
        ious = _iou_matrix(det.boxes_px, gt)
        used = np.zeros(len(gt), bool)
        for d in range(len(det)):
            j = int(np.argmax(np.where(used, -1, ious[d]))) if len(gt) else -1
            if j >= 0 and ious[d, j] >= 0.5:
                used[j] = True
                tp += 1
                same_class += int(det.class_ids[d] == gcls[j])
            else:
                ign = s.boxes_px[s.ignore]
                if not (len(ign) and _iou_matrix(det.boxes_px[d : d + 1], ign).max() > 0.3):
                    fp += 1
        fn += int((~used).sum())
    return tp / max(1, tp + fn), tp / max(1, tp + fp), same_class / max(1, tp)


def test_onnxruntime_default_detects_rendered_objects(samples: list) -> None:  # type: ignore[type-arg]
    det = create_ort(DetectorConfig(type="onnxruntime", min_score=0.4), MATERIAL_CLASSES)
    assert det.needs_pixels is True and det.class_names == MATERIAL_CLASSES
    recall, precision, class_acc = _match(samples, det.detect)
    det.close()
    assert recall >= 0.9 and precision >= 0.9 and class_acc >= 0.9, (recall, precision, class_acc)


def test_torch_backend_matches_onnxruntime_on_frames(samples: list) -> None:  # type: ignore[type-arg]
    pytest.importorskip("torch")
    from sorter.detect.torch_backend import create as create_torch

    cfg = DetectorConfig(type="torch", min_score=0.05)
    ort_det = create_ort(cfg.model_copy(update={"type": "onnxruntime"}), MATERIAL_CLASSES)
    torch_det = create_torch(cfg, MATERIAL_CLASSES)
    for s in samples[:4]:
        x, _ = ort_det.preprocess(s.image)
        a = ort_det.engine.infer(x.copy())
        b = torch_det.engine.infer(x.copy())
        keep = a[1][0] >= 0.05
        np.testing.assert_allclose(b[1][0][keep], a[1][0][keep], atol=1e-4)
        np.testing.assert_array_equal(b[2][0][keep], a[2][0][keep])
        np.testing.assert_allclose(b[0][0][keep], a[0][0][keep], atol=0.05)
    torch_det.close()
    ort_det.close()


def test_tensorrt_without_tensorrt_falls_back_to_onnxruntime(samples: list, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[type-arg]
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here: the fallback path is not reachable")
    except ImportError:
        pass
    from sorter.detect.tensorrt_backend import create as create_trt

    with caplog.at_level(logging.WARNING):
        det = create_trt(DetectorConfig(type="tensorrt", precision="fp16", device="cuda:0"), MATERIAL_CLASSES)
    assert det.engine.name.startswith("onnxruntime")
    assert any("FALLING BACK to onnxruntime" in r.getMessage() for r in caplog.records)
    assert len(det.detect(Frame(image=samples[0].image, t_capture_ns=0, s_capture_mm=0.0, frame_index=0))) > 0
    det.close()


def test_registry_builds_the_default_onnxruntime_detector() -> None:
    from sorter.detect.registry import create_detector

    cfg = Config(detector=DetectorConfig(type="onnxruntime"))
    det = create_detector(cfg, MATERIAL_CLASSES)
    assert det.needs_pixels
    frame = FRAMES[0]
    out = det.detect(Frame(image=frame.image, t_capture_ns=1, s_capture_mm=0.0, frame_index=0, truth=None))
    assert len(out) >= 1 and out.boxes_px.dtype == np.float32
    det.close()


def test_session_takes_the_cpus_a_scheduler_grants(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray task of one CPU runs with OMP_NUM_THREADS=1: its session then runs one intra-op thread, not one per
    core beside its neighbours; an explicit count wins, and a value that is not a positive count is ignored."""
    path = default_model_path()

    def threads(asked: int | None = None) -> int:
        return int(OrtEngine(path, threads=asked)._session.get_session_options().intra_op_num_threads)

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads() == 1
    assert threads(2) == 2
    for junk in ("0", "-2", "two", ""):
        monkeypatch.setenv("OMP_NUM_THREADS", junk)
        assert threads() == 0  # onnxruntime's default (one per core)
