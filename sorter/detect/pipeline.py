"""A Detector made of three stages: preprocess (letterbox) -> engine (any backend) -> postprocess.

Backends only provide an :class:`InferenceEngine`; everything around it is
shared so every backend returns identical detections for identical outputs.
The stages are public so the benchmark can time each one.

A live line runs the first stage in the capture thread (:meth:`EngineDetector.prepare`),
so the crop, resize and conversion of frame ``k + 1`` overlap the inference of
frame ``k`` (both release the interpreter). The prepared input carries what it
was made with; :meth:`EngineDetector.detect` uses it only when that is still
the detector's own model and region, and otherwise makes the input itself.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
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


@dataclass(frozen=True, slots=True)
class PreparedInput:
    """A frame's network input made ahead of :meth:`EngineDetector.detect`, and what it was made with.

    Attributes:
        tensor: ``(1, 3, H, W)`` float32, owned by the frame (never a reused buffer).
        letterbox: where the image (or its region) lies in ``tensor``.
        maker: the detector that made it (a switched model makes its own).
        roi: the region it was cropped to (a region changed since makes it stale).
    """

    tensor: npt.NDArray[np.float32]
    letterbox: Letterbox
    maker: object
    roi: Roi | None


class EngineDetector:
    """The :class:`~sorter.detect.base.Detector` shared by the onnxruntime, tensorrt and torch backends.

    Attributes:
        prepared_used: frames whose input :meth:`prepare` made (in the capture thread) and :meth:`detect` used.
        prepared_stale: frames prepared for another model or region, made again by :meth:`detect`.
    """

    needs_pixels: bool = True

    def __init__(self, engine: InferenceEngine, spec: ModelSpec, class_names: tuple[str, ...], min_score: float) -> None:
        self.engine = engine
        self.spec = spec
        self.class_names = class_names
        self.min_score = min_score
        self._map = class_map(spec.class_names, class_names)
        self._pre = Preprocessor(spec)
        self._prep = Preprocessor(spec)  # the capture thread's, with its own canvas (see prepare)
        self._prep_lock = threading.Lock()
        self.prepared_used = 0
        self.prepared_stale = 0

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

    def prepare(self, frame: Frame) -> Frame:
        """``frame`` with its network input made now, for a later :meth:`detect` (stage 1 ahead of time).

        Called from the capture thread while the loop's thread runs the previous frame's inference. The input is
        a new array owned by the returned frame; the crop is the region set when this runs (a region changed
        before the frame is detected on makes the input stale, and :meth:`detect` makes it again).

        Raises:
            ValueError: not an HxWx3 uint8 image (as :meth:`detect` would).
        """
        roi = self._pre.roi
        shape = (1, 3, self.spec.input_h_px, self.spec.input_w_px)
        with self._prep_lock:  # one canvas: one caller at a time (a line has one capture thread)
            self._prep.roi = roi
            tensor, lb = self._prep(frame.image, out=np.empty(shape, np.float32))
        return replace(frame, prepared=PreparedInput(tensor, lb, self, roi))

    def detect(self, frame: Frame) -> Detections:
        """Detect objects in one frame (frame pixels, pipeline class ids).

        Uses the input :meth:`prepare` made for the frame when it was made by this detector for its current
        region; otherwise makes it here.
        """
        p = frame.prepared
        if isinstance(p, PreparedInput) and p.maker is self and p.roi == self._pre.roi:
            self.prepared_used += 1
            tensor, lb = p.tensor, p.letterbox
        else:
            self.prepared_stale += p is not None
            tensor, lb = self.preprocess(frame.image)
        return self.postprocess(self.engine.infer(tensor), lb)

    def close(self) -> None:
        """Release the engine."""
        self.engine.close()
