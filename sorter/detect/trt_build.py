"""Build a serialized TensorRT engine from a sorter ONNX file.

The TensorRT module is passed in (``tensorrt``, or ``tensorrt_rtx`` in the CI
check that builds on the CPU), and :mod:`sorter.detect.trt_compat` decides the
flags per generation. Shapes are static, so no optimisation profile is needed.
"""

from __future__ import annotations

import logging
from typing import Any

from sorter.detect.trt_compat import build_plan
from sorter.errors import SorterError

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_MB = 1024


class EngineBuildError(SorterError):
    """TensorRT could not parse or build the model."""


def is_rtx(trt: Any) -> bool:
    """True for the TensorRT-RTX product (its own version numbering)."""
    return "rtx" in str(getattr(trt, "__name__", "")).lower()


def build_serialized_engine(trt: Any, onnx_bytes: bytes, precision: str, workspace_mb: int = DEFAULT_WORKSPACE_MB) -> bytes:
    """Parse ``onnx_bytes`` and build an engine.

    Args:
        trt: the TensorRT Python module.
        onnx_bytes: the ONNX model (precision baked in).
        precision: the model's precision (decides builder flags on TensorRT 8).
        workspace_mb: builder workspace limit.

    Raises:
        EngineBuildError: listing the parser errors, or when the build fails.
    """
    plan = build_plan(str(trt.__version__), precision, rtx=is_rtx(trt))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flag_enum = trt.NetworkDefinitionCreationFlag
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(flag_enum, name))
    for name in plan.optional_network_flags:
        if hasattr(flag_enum, name):
            flags |= 1 << int(getattr(flag_enum, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT {trt.__version__} cannot parse the model: {'; '.join(errors) or 'unknown error'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(
            f"TensorRT {trt.__version__} failed to build a {precision} engine; run with -vv for the builder log"
        )
    log.info("built a %s engine with TensorRT %s (%s plan)", precision, trt.__version__, plan.generation)
    return bytes(serialized)
