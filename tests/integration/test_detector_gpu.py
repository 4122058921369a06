"""The torch backend on CUDA (opt-in: ``pytest -m gpu``): FP16 + CUDA graph agree with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from sorter.config import DetectorConfig
from sorter.detect.golden import compare, load_golden
from sorter.detect.model_files import default_model_path, golden_path
from sorter.detect.preprocess import to_tensor
from sorter.entities import MATERIAL_CLASSES

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_cuda_graph_matches_golden(precision: str) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch")
    from sorter.detect.torch_backend import create

    det = create(DetectorConfig(type="torch", device="cuda:0", precision=precision), MATERIAL_CLASSES)
    assert det.engine.name.endswith("cudagraph")
    golden = load_golden(golden_path(default_model_path()))
    out = det.engine.infer(to_tensor(golden.canvas))
    assert compare(golden.outputs["fp32"], out, precision) == []
    again = det.engine.infer(to_tensor(golden.canvas))
    np.testing.assert_array_equal(out[1], again[1])
    det.close()
