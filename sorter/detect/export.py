"""ONNX export of the detector: FP32, FP16 (weights and body in half, decode in FP32) and INT8 Q/DQ.

Precision is baked into the ONNX file rather than chosen by builder flags,
because TensorRT 11 (and TensorRT-RTX) build strongly typed networks only.
Every variant keeps FP32 input and outputs so backends treat them alike.

Every Conv weight and bias initializer is named after its torch module
(``s8.1.a.conv.weight``), so :mod:`sorter.detect.onnx_weights` can load an
ONNX file back into the torch network without a separate checkpoint.

Needs torch (the ``train`` extra); imported lazily by its callers.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from sorter.detect.net import CenterNet, fused_copy
from sorter.detect.spec import INPUT_NAME, OUTPUT_NAMES, PRECISION_METADATA_KEY, SPEC_METADATA_KEY, ModelSpec

log = logging.getLogger(__name__)

OPSET = 17
#: The two output convolutions (class heatmap logits, box distances) stay FP32 in the INT8 variant: quantizing
#: them costs 0.025 mAP@0.5 on the held-out set, the rest of the network costs under 0.001.
FLOAT_HEAD_CONVS = ("/heat/Conv", "/box/Conv")


class _HalfBody(nn.Module):
    """Runs the network body in FP16 and the decoder in FP32; FP32 in and out."""

    def __init__(self, net: CenterNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        heat, dist = self.net.forward_raw(x.half())
        out: tuple[torch.Tensor, torch.Tensor, torch.Tensor] = self.net.decoder(heat.float(), dist.float())
        return out


def _conv_execution_order(net: CenterNet, x: torch.Tensor) -> list[str]:
    """Module names of the Conv2d layers in the order a forward pass runs them (= ONNX node order)."""
    names = {id(m): n for n, m in net.named_modules()}
    order: list[str] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(names[id(mod)]))
        for m in net.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            net.forward_raw(x)
    finally:
        for h in hooks:
            h.remove()
    return order


def _name_conv_initializers(model: onnx.ModelProto, conv_names: list[str]) -> None:
    """Give every Conv its own weight/bias initializers named after its module (undoes de-duplication)."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    # the exporter may share identical tensors through Identity nodes, or emit Constant nodes: resolve both
    consts = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    if len(convs) != len(conv_names):
        raise RuntimeError(f"ONNX has {len(convs)} Conv nodes but the network ran {len(conv_names)} convs; export changed layout")
    new_inits: list[onnx.TensorProto] = []
    for node, name in zip(convs, conv_names, strict=True):
        for slot, suffix in ((1, "weight"), (2, "bias")):
            if len(node.input) <= slot:
                continue
            src = node.input[slot]
            while src in alias:
                src = alias[src]
            if src in inits:
                arr = numpy_helper.to_array(inits[src])
            elif src in consts:
                arr = numpy_helper.to_array(consts[src].attribute[0].t)
            else:
                raise RuntimeError(f"Conv {name}: {suffix} '{src}' is not a constant; cannot name it")
            new_name = f"{name}.{suffix}"
            new_inits.append(numpy_helper.from_array(np.array(arr), new_name))
            node.input[slot] = new_name
    # drop Identity/Constant nodes nobody reads any more (or shadowed by a new initializer), then unread initializers
    new_names = {t.name for t in new_inits}
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [
            n
            for n in graph.node
            if n.op_type in ("Identity", "Constant") and (n.output[0] not in used or n.output[0] in new_names)
        ]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    keep = [i for i in graph.initializer if i.name in used and i.name not in new_names]
    del graph.initializer[:]
    graph.initializer.extend(keep + new_inits)


def set_metadata(model: onnx.ModelProto, spec: ModelSpec, precision: str, extra: dict[str, str] | None = None) -> None:
    """Store the spec, the precision and free-form provenance in the ONNX metadata."""
    props = {p.key: p.value for p in model.metadata_props}
    props.update({SPEC_METADATA_KEY: spec.to_json(), PRECISION_METADATA_KEY: precision, **(extra or {})})
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    model.producer_name = "sorter"


def export_onnx(
    net: CenterNet,
    path: str | Path,
    precision: Literal["fp32", "fp16"] = "fp32",
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Export the network (BatchNorm folded) with in-graph decoding to ONNX opset 17.

    Args:
        net: trained network (any mode; a fused eval copy is exported).
        path: output file.
        precision: ``fp32``, or ``fp16`` for half weights and body with FP32 I/O and decode.
        extra_metadata: provenance strings (seed, data recipe...) stored in the metadata.

    Returns:
        The path written.
    """
    spec = net.spec
    deploy = fused_copy(net).cpu().float()
    x = torch.zeros(1, 3, spec.input_h_px, spec.input_w_px)
    conv_names = _conv_execution_order(deploy, x)
    module: nn.Module = deploy
    if precision == "fp16":
        module = _HalfBody(deploy.half())
    elif precision != "fp32":
        raise ValueError(f"precision {precision!r}: export supports fp32 and fp16 (int8 comes from quantize_int8)")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy exporter deprecation, tracer int() warnings (static by design)
        torch.onnx.export(
            module,
            (x,),
            buf,  # type: ignore[arg-type]  # a file object is accepted
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buf.getvalue())
    _name_conv_initializers(model, [n.removeprefix("net.") for n in conv_names])
    set_metadata(model, spec, precision, extra_metadata)
    onnx.checker.check_model(model)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    log.info("exported %s model to %s (%.2f MB)", precision, out, out.stat().st_size / 1e6)
    return out


class _DropPreprocessAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage() and "pre-processing" not in record.getMessage()


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: npt.NDArray[np.float32],
    extra_metadata: dict[str, str] | None = None,
    *,
    method: str = "percentile",
    percentile: float = 99.99,
    keep_float: tuple[str, ...] = FLOAT_HEAD_CONVS,
) -> Path:
    """Make the INT8 Q/DQ variant with ONNX Runtime's static quantizer.

    Convs get symmetric per-channel INT8 weights and symmetric per-tensor INT8
    activations (what TensorRT's explicit quantization expects); the output
    convolutions named in ``keep_float`` and the decoder stay FP32.

    Weights use 7 bits of range (``reduce_range``): on x86 CPUs with AVX2 but no VNNI,
    ONNX Runtime multiplies INT8 through ``VPMADDUBSW``, whose 16-bit pair sums saturate
    with full-range weights; measured on such a CPU, full-range weights turned the golden
    frame's three objects into two boxes of the wrong class. With 7-bit weights the
    result is the same on every CPU, at a cost within 0.002 mAP.

    Args:
        fp32_path: the FP32 ONNX model.
        out_path: where to write the INT8 model.
        calibration: ``(N, 3, H, W)`` preprocessed network inputs, e.g. letterboxed rendered frames.
        extra_metadata: strings stored in the model's metadata.
        method: activation-range calibration, ``percentile``, ``minmax`` or ``entropy``.
        percentile: the percentile of ``method="percentile"``.
        keep_float: Conv node names left unquantized (each must exist in the graph).

    Returns:
        The path written.
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it: Iterator[npt.NDArray[np.float32]] = iter(calibration)

        def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
            nxt = next(self._it, None)
            return None if nxt is None else {INPUT_NAME: nxt[None].astype(np.float32)}

    conv_names = {n.name for n in onnx.load(str(fp32_path), load_external_data=False).graph.node if n.op_type == "Conv"}
    missing = sorted(set(keep_float) - conv_names)
    if missing:
        raise ValueError(f"keep_float names {missing} are not Conv nodes of {fp32_path}")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    quiet = _DropPreprocessAdvice()
    root.addFilter(quiet)  # the quantizer advises shape pre-processing on the root logger; our graph is already static
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # and prints calibration chatter
            quantize_static(
                str(fp32_path),
                str(out),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv"],
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method={
                    "percentile": CalibrationMethod.Percentile,
                    "minmax": CalibrationMethod.MinMax,
                    "entropy": CalibrationMethod.Entropy,
                }[method],
                nodes_to_exclude=list(keep_float),
                extra_options={
                    "ActivationSymmetric": True,
                    "WeightSymmetric": True,
                    "QuantizeBias": False,
                    "CalibPercentile": percentile,
                },
            )
    finally:
        root.removeFilter(quiet)
    model = onnx.load(str(out))
    src = onnx.load(str(fp32_path), load_external_data=False)
    spec = ModelSpec.from_json({p.key: p.value for p in src.metadata_props}[SPEC_METADATA_KEY])
    provenance = {p.key: p.value for p in src.metadata_props if p.key not in (SPEC_METADATA_KEY, PRECISION_METADATA_KEY)}
    set_metadata(model, spec, "int8", {**provenance, **(extra_metadata or {})})
    if model.opset_import[0].version < OPSET:
        raise RuntimeError(f"quantizer lowered the opset to {model.opset_import[0].version}")
    onnx.save(model, str(out))
    return out
