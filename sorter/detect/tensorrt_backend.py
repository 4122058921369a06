"""TensorRT backend: an engine built on the target from the ONNX, cached, checked, replayed as a CUDA graph.

* The engine is built from the precision variant of the model (FP16 weights or
  INT8 Q/DQ baked into the ONNX) and cached under a key of ONNX hash +
  TensorRT version + GPU + compute capability + precision + input shape
  (:mod:`sorter.detect.engine_cache`). ``scripts/build_engine.py`` fills the
  cache ahead of time when a box is provisioned.
* At load, the engine runs the model's golden input and must reproduce the
  golden outputs (:mod:`sorter.detect.golden`); a mismatch removes the engine
  from the cache and fails start-up with the differences.
* Inference uses ``execute_async_v3`` with tensor addresses set by name; the
  copy in, the execution and the copies out are captured once in a CUDA graph
  and replayed per frame.
* ``tensorrt`` is imported lazily. Without it (or without a CUDA runtime) the
  detector falls back to onnxruntime and says so in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sorter.config import Config, DetectorConfig
from sorter.detect.engine_cache import EngineCache, EngineKey, default_cache_dir
from sorter.detect.golden import compare, load_golden
from sorter.detect.model_files import file_sha256, golden_path, read_model_info, resolve_model
from sorter.detect.pipeline import EngineDetector, RawOutputs
from sorter.detect.preprocess import to_tensor
from sorter.detect.spec import INPUT_NAME, OUTPUT_NAMES, ModelSpec
from sorter.detect.trt_build import build_serialized_engine
from sorter.errors import DeviceNotConnectedError, SorterError

log = logging.getLogger(__name__)

#: Runtime API this backend calls, per object; CI checks it against ``tensorrt-lean``'s surface,
#: and a test checks that the code below calls nothing else.
RUNTIME_API: dict[str, tuple[str, ...]] = {
    "module": ("Logger", "Runtime", "TensorIOMode", "nptype"),
    "Logger": ("WARNING",),
    "Runtime": ("deserialize_cuda_engine",),
    "ICudaEngine": (
        "num_io_tensors",
        "get_tensor_name",
        "get_tensor_mode",
        "get_tensor_shape",
        "get_tensor_dtype",
        "create_execution_context",
    ),
    "IExecutionContext": ("set_tensor_address", "execute_async_v3"),
    "TensorIOMode": ("INPUT", "OUTPUT"),
}


class EngineParityError(SorterError):
    """A built engine does not reproduce the model's golden outputs."""


def device_index(device: str) -> int:
    if device.startswith("cuda"):
        _, _, idx = device.partition(":")
        return int(idx) if idx else 0
    log.info("detector.device = %r: TensorRT runs on a GPU, using cuda:0", device)
    return 0


class TrtEngine:
    """A deserialized engine with pinned host and device buffers for every I/O tensor, replayed as a CUDA graph."""

    def __init__(self, trt: Any, cuda: Any, engine_bytes: bytes, cuda_graph: bool = True) -> None:
        self._trt = trt
        self._cuda = cuda
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self._engine is None:
            raise SorterError(
                "TensorRT could not deserialize the engine (built by another version?); delete the engine cache and retry"
            )
        self._context = self._engine.create_execution_context()
        self._stream: int = cuda.stream_create()
        self._host: dict[str, npt.NDArray[Any]] = {}
        self._host_ptr: dict[str, int] = {}
        self._dev_ptr: dict[str, int] = {}
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            shape = tuple(int(d) for d in self._engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            host, hptr = cuda.pinned(shape, dtype)
            self._host[name], self._host_ptr[name] = host, hptr
            self._dev_ptr[name] = cuda.malloc(host.nbytes)
            self._context.set_tensor_address(name, self._dev_ptr[name])
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._inputs.append(name)
            elif self._engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                self._outputs.append(name)
        missing = [n for n in (INPUT_NAME, *OUTPUT_NAMES) if n not in self._host]
        if missing:
            raise SorterError(f"the engine lacks tensors {missing}; it was not built from a sorter model")
        self._graph = 0
        self._enqueue()  # first run outside capture: TensorRT finishes lazy setup here
        cuda.stream_synchronize(self._stream)
        if cuda_graph:
            cuda.begin_capture(self._stream)
            self._enqueue()
            self._graph = cuda.end_capture(self._stream)
        self.name = "tensorrt:cuda" + (":cudagraph" if self._graph else "")

    def _enqueue(self) -> None:
        c = self._cuda
        for n in self._inputs:
            c.memcpy_h2d_async(self._dev_ptr[n], self._host_ptr[n], self._host[n].nbytes, self._stream)
        if not self._context.execute_async_v3(self._stream):
            raise SorterError("TensorRT execute_async_v3 failed; see the TensorRT log above")
        for n in self._outputs:
            c.memcpy_d2h_async(self._host_ptr[n], self._dev_ptr[n], self._host[n].nbytes, self._stream)

    def infer(self, tensor: npt.NDArray[np.float32]) -> RawOutputs:
        """Copy the input into pinned memory, replay the graph, return copies of the outputs."""
        np.copyto(self._host[INPUT_NAME], tensor, casting="same_kind")
        if self._graph:
            self._cuda.graph_launch(self._graph, self._stream)
        else:
            self._enqueue()
        self._cuda.stream_synchronize(self._stream)
        boxes, scores, classes = (self._host[n] for n in OUTPUT_NAMES)
        return boxes.astype(np.float32), scores.astype(np.float32), classes.astype(np.int32)

    def close(self) -> None:
        """Free the graph, buffers and stream."""
        c = self._cuda
        if self._graph:
            c.graph_destroy(self._graph)
            self._graph = 0
        for p in self._dev_ptr.values():
            c.free(p)
        for p in self._host_ptr.values():
            c.free_pinned(p)
        self._dev_ptr.clear()
        self._host_ptr.clear()
        self._host.clear()
        if self._stream:
            c.stream_destroy(self._stream)
            self._stream = 0


def engine_key(trt_version: str, cuda: Any, onnx_path: Path, precision: str, spec: ModelSpec) -> EngineKey:
    """The cache key of an engine for this model file, TensorRT version and GPU."""
    return EngineKey(
        onnx_sha256=file_sha256(onnx_path),
        trt_version=trt_version,
        gpu_name=cuda.device_name(),
        compute_capability=cuda.compute_capability(),
        precision=precision,
        input_shape=(1, 3, spec.input_h_px, spec.input_w_px),
    )


def parity_self_test(engine: TrtEngine, onnx_path: Path, precision: str) -> list[str]:
    """Run the golden input through ``engine``; returns the differences (empty: parity holds, or no golden file)."""
    gp = golden_path(onnx_path)
    if not gp.exists():
        log.warning("no golden outputs beside %s (%s); skipping the TensorRT parity self-test", onnx_path, gp.name)
        return []
    golden = load_golden(gp)
    ref = golden.outputs.get(precision) or golden.outputs["fp32"]
    return compare(ref, engine.infer(to_tensor(golden.canvas)), precision)


def load_engine(
    cfg: DetectorConfig, trt: Any, cuda: Any, force_build: bool = False, cuda_graph: bool = True
) -> tuple[TrtEngine, ModelSpec, EngineKey, bool]:
    """Build or fetch the engine for ``cfg``, load it and run the parity self-test.

    Returns:
        ``(engine, spec, key, cache_hit)``.

    Raises:
        EngineParityError: when the engine disagrees with the golden outputs (the cached engine is removed).
    """
    path = resolve_model(cfg.model, cfg.precision)
    info = read_model_info(path)
    key = engine_key(str(trt.__version__), cuda, path, cfg.precision, info.spec)
    cache = EngineCache(Path(cfg.engine_cache_dir) if cfg.engine_cache_dir else default_cache_dir())
    data, hit = cache.get_or_build(key, lambda: build_serialized_engine(trt, path.read_bytes(), cfg.precision), force=force_build)
    engine = TrtEngine(trt, cuda, data, cuda_graph=cuda_graph)
    problems = parity_self_test(engine, path, cfg.precision)
    if problems:
        engine.close()
        cache.invalidate(key)
        raise EngineParityError(
            f"TensorRT engine for '{path.name}' ({cfg.precision}) fails the parity self-test against the golden outputs: "
            + "; ".join(problems[:5])
            + ". The engine was removed from the cache; try detector.precision=fp32, or detector.type=onnxruntime"
        )
    log.info("TensorRT engine %s loaded (%s), parity self-test passed", key.file_name(), "cached" if hit else "built")
    return engine, info.spec, key, hit


def create(cfg: DetectorConfig, class_names: tuple[str, ...]) -> EngineDetector:
    """Build the TensorRT detector; falls back to onnxruntime when TensorRT or CUDA is missing."""
    try:
        import tensorrt as trt
    except ImportError:
        log.warning(
            "detector.type = tensorrt but the 'tensorrt' Python package is not installed; "
            "FALLING BACK to onnxruntime (install TensorRT, e.g. JetPack or 'pip install tensorrt', for GPU speed)"
        )
        return _fallback(cfg, class_names)
    from sorter.detect.cuda_runtime import CudaRuntime

    try:
        cuda = CudaRuntime(device_index(cfg.device))
    except DeviceNotConnectedError as e:
        log.warning("detector.type = tensorrt but no usable GPU: %s; FALLING BACK to onnxruntime", e)
        return _fallback(cfg, class_names)
    engine, spec, _key, _hit = load_engine(cfg, trt, cuda)
    return EngineDetector(engine, spec, class_names, cfg.min_score)


def _fallback(cfg: DetectorConfig, class_names: tuple[str, ...]) -> EngineDetector:
    from sorter.detect import onnxruntime_backend

    return onnxruntime_backend.create(cfg.model_copy(update={"type": "onnxruntime", "device": "cpu"}), class_names)


def from_config(cfg: Config, class_names: tuple[str, ...]) -> EngineDetector:
    """The ``detect`` registry's factory (``sorter.detect.registry.DETECTORS``): :func:`create` with ``detector.*``."""
    return create(cfg.detector, class_names)
