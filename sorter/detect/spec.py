"""The shape of one detector model: what every backend, exporter and trainer must agree on.

A :class:`ModelSpec` is stored as JSON in the ONNX file's metadata (key
``sorter.model_spec``) so a backend can preprocess for the right input size and
the torch backend can rebuild the network, without any side file.

Pure standard library: no torch, no onnx.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from sorter.entities import MATERIAL_CLASSES

#: ONNX metadata key holding :meth:`ModelSpec.to_json`.
SPEC_METADATA_KEY = "sorter.model_spec"
#: ONNX metadata key holding the precision of the variant (``fp32``, ``fp16``, ``int8``).
PRECISION_METADATA_KEY = "sorter.precision"

INPUT_NAME = "images"
OUTPUT_NAMES: tuple[str, str, str] = ("boxes", "scores", "classes")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture and I/O contract of a detector.

    Attributes:
        input_w_px: network input width in pixels (multiple of 32).
        input_h_px: network input height in pixels (multiple of 32).
        width: base channel count of the backbone (the width multiplier).
        out_stride: stride of the heatmap relative to the network input (4 or 8).
        top_k: number of peaks returned (static output size ``K``).
        class_names: class names in class-id order.
        pad_value: grey level (0..255) of the letterbox padding, also used in training.
    """

    input_w_px: int = 384
    input_h_px: int = 224
    width: int = 16
    out_stride: int = 4
    top_k: int = 100
    class_names: tuple[str, ...] = field(default=MATERIAL_CLASSES)
    pad_value: int = 114

    def __post_init__(self) -> None:
        if self.input_w_px % 32 or self.input_h_px % 32 or self.input_w_px <= 0 or self.input_h_px <= 0:
            raise ValueError(
                f"model input {self.input_w_px}x{self.input_h_px} px: both sides must be positive multiples of 32, e.g. 384x224"
            )
        if self.out_stride not in (4, 8):
            raise ValueError(f"out_stride = {self.out_stride}: must be 4 or 8")
        if self.width < 4:
            raise ValueError(f"width = {self.width}: must be >= 4 channels")
        if not self.class_names:
            raise ValueError("class_names must name at least one class")
        n_cells = (self.input_w_px // self.out_stride) * (self.input_h_px // self.out_stride)
        if not 1 <= self.top_k <= n_cells:
            raise ValueError(f"top_k = {self.top_k}: must be between 1 and the number of heatmap cells ({n_cells})")

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def heatmap_w(self) -> int:
        """Heatmap width in cells."""
        return self.input_w_px // self.out_stride

    @property
    def heatmap_h(self) -> int:
        """Heatmap height in cells."""
        return self.input_h_px // self.out_stride

    def to_json(self) -> str:
        """Serialise to a compact JSON string (stable key order)."""
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        return json.dumps(d, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> ModelSpec:
        """Parse :meth:`to_json` output; unknown keys are an error (a newer model format)."""
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError(f"model spec must be a JSON object, got {type(d).__name__}")
        known = set(ModelSpec.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"model spec has unknown keys {sorted(unknown)}; this model needs a newer sorter")
        for key in ("input_w_px", "input_h_px", "width", "out_stride", "top_k", "pad_value"):
            if key in d and (not isinstance(d[key], int) or isinstance(d[key], bool)):
                raise ValueError(f"model spec '{key}' = {str(d[key])[:40]!r} must be a whole number")
        names = d.get("class_names", list(MATERIAL_CLASSES))
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("model spec 'class_names' must be a list of class names")
        d["class_names"] = tuple(names)
        return ModelSpec(**d)
