"""A Detector made of three stages: preprocess (letterbox) -> engine (any backend) -> postprocess.

Backends only provide an :class:`InferenceEngine`; everything around it is
shared so every backend returns identical detections for identical outputs.
The stages are public so the benchmark can time each one.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sorter.detect.postprocess import to_detections
from sorter.detect.preprocess import Letterbox, Preprocessor
from sorter.detect.roi import Roi
from sorter.detect.spec import ModelSpec
from sorter.entities import Detections, Frame, ImageArray
from sorter.errors import ConfigError

log = logging.getLogger(__name__)

RawOutputs = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int32]]


class InferenceEngine(Protocol):
    """Runs the network on one preprocessed input.

    Attributes:
        name: backend and device, for logs and benchmarks (``onnxruntime:cpu``...).
    """

    name: str

    def infer(self, tensor: npt.NDArray[np.float32]) -> RawOutputs:
        """``(1, 3, H, W)`` float32 -> ``boxes (1, K, 4)``, ``scores (1, K)``, ``classes (1, K)`` (host arrays)."""
        ...

    def close(self) -> None:
        """Release the engine."""
        ...


def class_map(model_classes: tuple[str, ...], class_names: tuple[str, ...]) -> npt.NDArray[np.int32]:
    """Model class index -> pipeline class id, by name.

    Raises:
        ConfigError: when the model knows a class the pipeline does not.
    """
    unknown = [c for c in model_classes if c not in class_names]
    if unknown:
        raise ConfigError(
            f"detector.model predicts classes {unknown} that the line does not know ({', '.join(class_names)}); "
            "train the model with the line's class names"
        )
    return np.array([class_names.index(c) for c in model_classes], np.int32)


class EngineDetector:
    """The :class:`~sorter.detect.base.Detector` shared by the onnxruntime, tensorrt and torch backends."""

    needs_pixels: bool = True

    def __init__(self, engine: InferenceEngine, spec: ModelSpec, class_names: tuple[str, ...], min_score: float) -> None:
        self.engine = engine
        self.spec = spec
        self.class_names = class_names
        self.min_score = min_score
        self._map = class_map(spec.class_names, class_names)
        self._pre = Preprocessor(spec)

    @property
    def roi(self) -> Roi | None:
        """The region of each frame the detector looks at (None: the whole frame)."""
        return self._pre.roi

    def set_roi(self, roi: Roi | None) -> None:
        """Look only at ``roi`` of each frame from now on; boxes stay in whole-frame pixels, inside ``roi``."""
        self._pre.roi = roi

    def preprocess(self, image: ImageArray) -> tuple[npt.NDArray[np.float32], Letterbox]:
        """Stage 1: crop to the region, letterbox into the reused input buffer."""
        return self._pre(image)

    def postprocess(self, outputs: RawOutputs, letterbox: Letterbox) -> Detections:
        """Stage 3: threshold, map to frame pixels and pipeline class ids."""
        boxes, scores, classes = outputs
        det = to_detections(boxes, scores, classes, letterbox, self.min_score, self.spec.num_classes)
        if len(det) and not np.array_equal(self._map, np.arange(self._map.size)):
            det = Detections(det.boxes_px, det.scores, self._map[det.class_ids])
        return det

    def detect(self, frame: Frame) -> Detections:
        """Detect objects in one frame (frame pixels, pipeline class ids)."""
        tensor, lb = self.preprocess(frame.image)
        return self.postprocess(self.engine.infer(tensor), lb)

    def close(self) -> None:
        """Release the engine."""
        self.engine.close()
