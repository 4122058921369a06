"""ONNX Runtime backend: the reference detector (CPU everywhere, CUDA where installed)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sorter.config import Config, DetectorConfig
from sorter.detect.model_check import TensorInfo, io_problems
from sorter.detect.model_files import read_model_info, resolve_model
from sorter.detect.pipeline import EngineDetector, RawOutputs
from sorter.detect.spec import INPUT_NAME, OUTPUT_NAMES
from sorter.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)


def _cuda_device_id(device: str) -> int | None:
    """``cuda`` / ``cuda:1`` -> device index; anything else -> None (CPU)."""
    if not device.startswith("cuda"):
        return None
    _, _, idx = device.partition(":")
    return int(idx) if idx else 0


def threads_from_env() -> int | None:
    """``OMP_NUM_THREADS`` when it names a positive count, else None (onnxruntime's default: one per core).

    ONNX Runtime's own pool does not read it, but a scheduler that grants a process some CPUs says so there (a Ray
    task of ``num_cpus=1`` runs with ``OMP_NUM_THREADS=1``): a session that took every core beside its neighbours
    would make each of them slower.
    """
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


class OrtEngine:
    """An ONNX Runtime session on one model file."""

    def __init__(self, path: Path, device: str = "cpu", threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("onnxruntime", "core", "the onnxruntime detector backend") from None
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = threads or threads_from_env()
        if threads:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Idle pool threads sleep instead of spinning: spinning burned 1.5-1.9x the CPU per inference and doubled the
        # p99 beside another busy process on a 2-core box, for no gain in the median (scripts/bench_ort_threads.py).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers: list[Any] = ["CPUExecutionProvider"]
        dev = _cuda_device_id(device)
        if dev is not None:
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, ("CUDAExecutionProvider", {"device_id": dev}))
            else:
                log.warning("detector.device = %r but this onnxruntime has no CUDA provider; running on the CPU", device)
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # truncated, corrupt or unsupported graphs: onnxruntime raises its own types
            text = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise ConfigError(
                f"detector.model: ONNX Runtime cannot load '{path}' ({text}); the file is damaged or not a detector "
                "exported by 'sorter train': copy it again or use the packaged model"
            ) from None
        used = self._session.get_providers()[0]
        self.name = f"onnxruntime:{'cuda' if used == 'CUDAExecutionProvider' else 'cpu'}"
        log.info("onnxruntime session on %s (%s)", path, used)

    def io(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        """The session's inputs and outputs as declared in the model."""

        def info(args: Any) -> list[TensorInfo]:
            return [TensorInfo(a.name, tuple(d if isinstance(d, int) else None for d in (a.shape or ()))) for a in args]

        return info(self._session.get_inputs()), info(self._session.get_outputs())

    def infer(self, tensor: npt.NDArray[np.float32]) -> RawOutputs:
        """Run the session on one ``(1, 3, H, W)`` input."""
        boxes, scores, classes = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: tensor})
        return boxes, scores, classes

    def close(self) -> None:
        """Drop the session."""
        self._session = None


def create(cfg: DetectorConfig, class_names: tuple[str, ...], threads: int | None = None) -> EngineDetector:
    """Build the onnxruntime detector for ``detector.*`` settings.

    Args:
        cfg: detector settings (``model`` None = packaged default; ``precision`` picks the variant file).
        class_names: the line's class names in class-id order.
        threads: intra-op threads (None: ``OMP_NUM_THREADS`` if set, else onnxruntime's default, one per physical core).
    """
    path = resolve_model(cfg.model, cfg.precision)
    info = read_model_info(path)
    engine = OrtEngine(path, cfg.device, threads)
    inputs, outputs = engine.io()
    problems = io_problems(inputs, outputs, info.spec)
    if problems:
        engine.close()
        raise ConfigError(
            f"detector.model: '{path}' does not match its own metadata: " + "; ".join(problems) + "; "
            "export it again with 'sorter train --export-only' or use the packaged model"
        )
    try:
        return EngineDetector(engine, info.spec, class_names, cfg.min_score)
    except BaseException:
        engine.close()
        raise


def from_config(cfg: Config, class_names: tuple[str, ...]) -> EngineDetector:
    """The ``detect`` registry's factory (``sorter.detect.registry.DETECTORS``): :func:`create` with ``detector.*``."""
    return create(cfg.detector, class_names)
