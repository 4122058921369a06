"""Load a sorter ONNX model's weights back into the torch network.

The exporter names every Conv initializer after its torch module, so the
deployed (BatchNorm-folded) network's state dict is recovered exactly from an
FP32 or FP16 ONNX file: the torch backend needs no separate checkpoint.
Needs torch; imported lazily.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from sorter.detect.model_files import read_model_info
from sorter.detect.net import CenterNet, build_fused
from sorter.errors import ConfigError


def load_fused_from_onnx(path: Path) -> CenterNet:
    """The deployed network (eval mode, FP32, CPU) with the weights of an FP32/FP16 ONNX file.

    Raises:
        ConfigError: for an INT8 file or one whose weights do not match the spec.
    """
    info = read_model_info(path)
    if info.precision == "int8":
        raise ConfigError(f"'{path.name}' is the INT8 Q/DQ variant; the torch backend loads the FP32 file and runs FP16 itself")
    net = build_fused(info.spec)
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    state = net.state_dict()
    missing = [k for k in state if k not in inits]
    if missing:
        raise ConfigError(
            f"'{path}' lacks weights {missing[:3]}... for its declared spec; re-export it with 'sorter train --export-only'"
        )
    loaded: dict[str, torch.Tensor] = {}
    for k, ref in state.items():
        arr = numpy_helper.to_array(inits[k]).astype(np.float32)
        if tuple(arr.shape) != tuple(ref.shape):
            raise ConfigError(
                f"'{path}': weight {k} has shape {arr.shape}, the spec needs {tuple(ref.shape)}; the file is inconsistent"
            )
        loaded[k] = torch.from_numpy(arr.copy())
    net.load_state_dict(loaded, strict=True)
    return net.eval()
