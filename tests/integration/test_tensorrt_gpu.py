"""On an NVIDIA GPU with TensorRT (opt-in: ``pytest -m gpu``): build, cache, parity self-test and CUDA-graph inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sorter.config import DetectorConfig
from sorter.entities import MATERIAL_CLASSES, Frame

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def trt_and_cuda():  # type: ignore[no-untyped-def]
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed on this machine")
    from sorter.detect.cuda_runtime import CudaRuntime

    return trt, CudaRuntime(0)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_builds_caches_and_passes_parity(trt_and_cuda, tmp_path: Path, precision: str) -> None:  # type: ignore[no-untyped-def]
    from sorter.detect.tensorrt_backend import load_engine

    trt, cuda = trt_and_cuda
    cfg = DetectorConfig(type="tensorrt", precision=precision, device="cuda:0", engine_cache_dir=str(tmp_path))  # type: ignore[arg-type]
    engine, spec, key, hit = load_engine(cfg, trt, cuda)
    assert not hit and engine.name.endswith("cudagraph")
    engine.close()
    engine2, _, key2, hit2 = load_engine(cfg, trt, cuda)
    assert hit2 and key2 == key
    x = np.random.default_rng(0).random((1, 3, spec.input_h_px, spec.input_w_px), dtype=np.float32)
    a = engine2.infer(x)
    b = engine2.infer(x)
    np.testing.assert_array_equal(a[1], b[1])  # graph replays are deterministic
    engine2.close()


def test_tensorrt_detector_detects_rendered_objects(trt_and_cuda, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sorter.detect.tensorrt_backend import create
    from sorter.train.synth import SynthDataset, SynthRecipe

    cfg = DetectorConfig(type="tensorrt", precision="fp16", device="cuda:0", engine_cache_dir=str(tmp_path))
    det = create(cfg, MATERIAL_CLASSES)
    assert det.engine.name.startswith("tensorrt")
    s = SynthDataset(SynthRecipe(n_images=1, seed=1_000_005))[0]
    out = det.detect(Frame(image=s.image, t_capture_ns=0, s_capture_mm=0.0, frame_index=0))
    assert len(out) >= max(1, int((~s.ignore).sum()) - 2)
    det.close()
