"""How to drive each TensorRT generation. Pure: decides flags from a version string, imports nothing.

* 8.5 / 8.6 (JetPack 5 / 6): networks need ``EXPLICIT_BATCH``; precision comes
  from builder flags (``FP16``; ``INT8`` + ``FP16`` for an explicitly
  quantized Q/DQ model).
* 10.x: explicit batch is implicit; the network is created ``STRONGLY_TYPED``
  so the types baked into the ONNX (FP16 weights, Q/DQ) decide precision.
* 11.x and TensorRT-RTX: strongly typed only, the builder precision flags are
  gone; ``STRONGLY_TYPED`` is set where the enum still exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from sorter.errors import SorterError

SUPPORTED = "TensorRT 8.5/8.6, 10.x, 11.x or TensorRT-RTX"


@dataclass(frozen=True)
class BuildPlan:
    """What to set on a builder for one TensorRT generation and model precision.

    Attributes:
        generation: ``"8"``, ``"10"``, ``"11"`` or ``"rtx"``.
        network_flags: ``NetworkDefinitionCreationFlag`` member names to OR together.
        optional_network_flags: members to set only where the enum has them.
        builder_flags: ``BuilderFlag`` member names to set.
    """

    generation: str
    network_flags: tuple[str, ...]
    optional_network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]


def parse_version(version: str) -> tuple[int, int]:
    """``"10.3.0.26"`` -> ``(10, 3)``."""
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise SorterError(f"cannot parse the TensorRT version {version!r}; expected e.g. 10.3.0") from None


def build_plan(version: str, precision: str, rtx: bool = False) -> BuildPlan:
    """Builder settings for a TensorRT ``version`` (``rtx``: the TensorRT-RTX product) and a model ``precision``.

    Raises:
        SorterError: for an unsupported TensorRT version or precision.
    """
    if precision not in ("fp32", "fp16", "int8"):
        raise SorterError(f"precision {precision!r}: expected fp32, fp16 or int8")
    if rtx:
        return BuildPlan("rtx", (), ("STRONGLY_TYPED",), ())
    major, minor = parse_version(version)
    if major == 8 and minor >= 5:
        flags = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]
        return BuildPlan("8", ("EXPLICIT_BATCH",), (), flags)
    if major == 10:
        return BuildPlan("10", ("STRONGLY_TYPED",), (), ())
    if major == 11:
        return BuildPlan("11", (), ("STRONGLY_TYPED",), ())
    raise SorterError(f"TensorRT {version} is not supported; install {SUPPORTED}, or use detector.type=onnxruntime")
