"""The torch network: in-graph decoding, ONNX export (standard ops, static shapes) and weight round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from sorter.detect.export import export_onnx  # noqa: E402
from sorter.detect.model_files import read_model_info  # noqa: E402
from sorter.detect.net import CenterNet, PeakDecoder, fused_copy  # noqa: E402
from sorter.detect.onnx_weights import load_fused_from_onnx  # noqa: E402
from sorter.detect.onnxruntime_backend import OrtEngine  # noqa: E402
from sorter.detect.spec import ModelSpec  # noqa: E402

SPEC = ModelSpec(input_w_px=128, input_h_px=96, width=8, top_k=20)
#: ONNX ops a TensorRT 8.5+ parser accepts for this graph.
STANDARD_OPS = {
    "Conv",
    "Relu",
    "Add",
    "Resize",
    "ReduceMax",
    "ArgMax",
    "Sigmoid",
    "MaxPool",
    "Equal",
    "Cast",
    "Mul",
    "Reshape",
    "TopK",
    "Gather",
    "GatherElements",
    "Softplus",
    "Sub",
    "Concat",
    "Unsqueeze",
    "Expand",
    "Constant",
    "ConstantOfShape",
    "Where",
    "Identity",
    "Shape",
    "Slice",
    "Squeeze",
    "QuantizeLinear",
    "DequantizeLinear",
}


def _trained_like(spec: ModelSpec, seed: int = 0) -> CenterNet:
    """A random network with non-trivial BatchNorm statistics (as after training)."""
    torch.manual_seed(seed)
    net = CenterNet(spec)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net.forward_raw(torch.rand(2, 3, spec.input_h_px, spec.input_w_px))
    return net.eval()


def test_decoder_finds_peaks_and_builds_boxes() -> None:
    spec = ModelSpec(input_w_px=64, input_h_px=64, width=4, top_k=3, class_names=("a", "b"))
    dec = PeakDecoder(spec)  # 16x16 cells of 4 px
    heat = torch.full((1, 2, 16, 16), -10.0)
    heat[0, 1, 5, 7] = 3.0  # peak of class b at cell (x=7, y=5): centre (30, 22)
    heat[0, 1, 5, 8] = 1.0  # its neighbour: suppressed by the 3x3 max-pool
    heat[0, 0, 12, 2] = 0.0  # class a at cell (2, 12): centre (10, 50)
    dist = torch.zeros(1, 4, 16, 16)
    dist[0, :, 5, 7] = torch.tensor([10.0, 6.0, 4.0, 8.0])
    dist[0, :, 12, 2] = torch.tensor([2.0, 2.0, 2.0, 2.0])
    boxes, scores, classes = dec(heat, dist)
    assert boxes.shape == (1, 3, 4) and scores.shape == (1, 3) and classes.shape == (1, 3)
    assert classes.dtype == torch.int32
    assert scores[0, 0] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())
    assert classes[0, :2].tolist() == [1, 0]
    np.testing.assert_allclose(boxes[0, 0].numpy(), [20, 16, 34, 30])
    np.testing.assert_allclose(boxes[0, 1].numpy(), [8, 48, 12, 52])
    assert scores[0, 2] < 1e-3  # the suppressed neighbour does not come back


def test_bn_folding_preserves_outputs() -> None:
    net = _trained_like(SPEC)
    x = torch.rand(1, 3, SPEC.input_h_px, SPEC.input_w_px)
    with torch.no_grad():
        a = net.forward_raw(x)
        b = fused_copy(net).forward_raw(x)
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-4)


def test_export_is_static_opset17_standard_ops_with_metadata(tmp_path: Path) -> None:
    path = export_onnx(_trained_like(SPEC), tmp_path / "m.onnx", "fp32", {"sorter.seed": "7"})
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 17
    ops = {n.op_type for n in model.graph.node}
    assert ops <= STANDARD_OPS, ops - STANDARD_OPS
    assert {"TopK", "MaxPool"} <= ops  # decoding is in the graph
    shapes = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert shapes == {"boxes": [1, 20, 4], "scores": [1, 20], "classes": [1, 20]}
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 96, 128]
    info = read_model_info(path)
    assert info.spec == SPEC and info.precision == "fp32" and info.metadata["sorter.seed"] == "7"


def test_onnx_weights_load_back_exactly_and_ort_matches_torch(tmp_path: Path) -> None:
    net = _trained_like(SPEC, seed=3)
    path = export_onnx(net, tmp_path / "m.onnx")
    loaded = load_fused_from_onnx(path)
    ref = fused_copy(net)
    for (k, v), (k2, v2) in zip(ref.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2
        torch.testing.assert_close(v, v2, rtol=0, atol=0)
    x = np.random.default_rng(1).random((1, 3, SPEC.input_h_px, SPEC.input_w_px), dtype=np.float32)
    with torch.no_grad():
        tb, ts, tc = (t.numpy() for t in loaded(torch.from_numpy(x)))
    ob, os_, oc = OrtEngine(path).infer(x)
    # raw decoded outputs: same peaks, same order, same boxes
    np.testing.assert_allclose(os_, ts, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(oc, tc)
    np.testing.assert_allclose(ob, tb, rtol=1e-4, atol=1e-3)


def test_fp16_export_keeps_fp32_io_and_halves_the_file(tmp_path: Path) -> None:
    net = _trained_like(SPEC)
    p32 = export_onnx(net, tmp_path / "m.onnx")
    p16 = export_onnx(net, tmp_path / "m.fp16.onnx", "fp16")
    m = onnx.load(str(p16))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)
    assert p16.stat().st_size < 0.6 * p32.stat().st_size
    assert read_model_info(p16).precision == "fp16"
    x = np.random.default_rng(2).random((1, 3, SPEC.input_h_px, SPEC.input_w_px), dtype=np.float32)
    s32 = OrtEngine(p32).infer(x)[1]
    s16 = OrtEngine(p16).infer(x)[1]
    np.testing.assert_allclose(np.sort(s16[0])[-5:], np.sort(s32[0])[-5:], atol=5e-3)
