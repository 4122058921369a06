"""PyTorch backend: CPU or CUDA, FP32 or FP16, with a CUDA graph on the GPU.

The network is rebuilt from the ONNX file's spec and weights (see
:mod:`sorter.detect.onnx_weights`), so the same model file serves every
backend. On CUDA the whole forward pass (including in-graph decoding) is
captured once in a CUDA graph and replayed per frame, with static input and
output buffers; FP16 runs the body in half precision and decodes in FP32.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sorter.config import Config, DetectorConfig
from sorter.detect.model_files import read_model_info, resolve_model
from sorter.detect.pipeline import EngineDetector, RawOutputs
from sorter.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

WARMUP_RUNS = 3


class TorchEngine:
    """The detector network in torch on one device."""

    def __init__(
        self, path: Path, device: str = "cpu", precision: str = "fp32", cuda_graph: bool = True, threads: int | None = None
    ) -> None:
        try:
            import torch
        except ImportError:
            raise MissingDependencyError("torch", "train", "the torch detector backend") from None
        from sorter.detect.onnx_weights import load_fused_from_onnx

        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                f"detector.device = {device!r} but torch sees no CUDA device; "
                "set detector.device=cpu or install a CUDA build of torch"
            )
        if precision == "int8":
            raise ConfigError(
                "detector.precision = 'int8' is not supported by the torch backend; "
                "use fp32/fp16, or the tensorrt backend for int8"
            )
        if precision == "fp16" and dev.type != "cuda":
            log.warning("detector.precision = fp16 on the CPU is slow in torch; running fp32 instead")
            precision = "fp32"
        net = load_fused_from_onnx(path).to(dev)
        if precision == "fp16":
            net = net.half()
            net.decoder.float()  # decode buffers (cell centres) stay fp32
        self._net = net
        self._dev = dev
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        spec = net.spec
        self._static_in = torch.zeros(1, 3, spec.input_h_px, spec.input_w_px, device=dev, dtype=torch.float32)
        self._graph: Any = None
        self._static_out: tuple[Any, Any, Any] | None = None
        self.name = f"torch:{dev.type}:{precision}"
        if dev.type == "cuda" and cuda_graph:
            self._capture()
            self.name += ":cudagraph"

    def _forward(self, x: Any) -> tuple[Any, Any, Any]:
        heat, dist = self._net.forward_raw(x.to(self._dtype))
        out: tuple[Any, Any, Any] = self._net.decoder(heat.float(), dist.float())
        return out

    def _capture(self) -> None:
        torch = self._torch
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(WARMUP_RUNS):  # warm-up on a side stream, as CUDA graph capture requires
                self._forward(self._static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            self._static_out = self._forward(self._static_in)
        self._graph = graph

    def infer(self, tensor: npt.NDArray[np.float32]) -> RawOutputs:
        """Run one ``(1, 3, H, W)`` input; returns host arrays."""
        torch = self._torch
        with torch.inference_mode():
            if self._graph is not None and self._static_out is not None:
                self._static_in.copy_(torch.from_numpy(tensor), non_blocking=False)
                self._graph.replay()
                boxes, scores, classes = self._static_out
            else:
                boxes, scores, classes = self._forward(torch.from_numpy(tensor).to(self._dev))
            return (
                boxes.float().cpu().numpy(),
                scores.float().cpu().numpy(),
                classes.to(torch.int32).cpu().numpy(),
            )

    def close(self) -> None:
        """Release the graph and the network."""
        self._graph = None
        self._static_out = None


def create(cfg: DetectorConfig, class_names: tuple[str, ...], threads: int | None = None) -> EngineDetector:
    """Build the torch detector for ``detector.*`` settings (loads the FP32 ONNX whatever the precision)."""
    path = resolve_model(cfg.model, "fp32")
    info = read_model_info(path)
    engine = TorchEngine(path, cfg.device, cfg.precision, threads=threads)
    return EngineDetector(engine, info.spec, class_names, cfg.min_score)


def from_config(cfg: Config, class_names: tuple[str, ...]) -> EngineDetector:
    """The ``detect`` registry's factory (``sorter.detect.registry.DETECTORS``): :func:`create` with ``detector.*``."""
    return create(cfg.detector, class_names)
