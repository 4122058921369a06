"""The ``oracle`` detector: simulator ground truth made realistically imperfect.

It lets tracking and scheduling be measured independently of the learned
model. It implements the same Detector protocol as the learned backends but
reads ``frame.truth`` instead of pixels, so it only works on simulated frames.

Noise model (all rates configurable, deterministic per frame index):

* misses: each visible object is dropped with probability ``miss_rate``;
  objects less than ``min_visible_fraction`` visible are never reported;
* class confusion: with probability ``class_confusion`` the class is replaced
  by a random other class;
* box jitter: Gaussian noise of ``box_jitter_px`` on every box edge;
* false positives: a Poisson number (mean ``false_positives_per_frame``) of
  random boxes of plausible size, with lower scores;
* scores: true detections score 0.55-0.99, false positives 0.3-0.7.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sorter.entities import Detections, Frame
from sorter.errors import ConfigError, SorterError

if TYPE_CHECKING:
    from sorter.config import Config


class OracleDetector:
    """Detector backend that perturbs simulator ground truth."""

    needs_pixels = False

    def __init__(
        self,
        class_names: tuple[str, ...],
        *,
        miss_rate: float,
        class_confusion: float,
        false_positives_per_frame: float,
        box_jitter_px: float,
        min_visible_fraction: float,
        seed: int,
        image_size_px: tuple[int, int] = (1280, 720),
    ) -> None:
        self.class_names = class_names
        self._miss_rate = miss_rate
        self._confusion = class_confusion
        self._fp_rate = false_positives_per_frame
        self._jitter = box_jitter_px
        self._min_visible = min_visible_fraction
        self._seed = seed
        self._width_px, self._height_px = image_size_px

    def detect(self, frame: Frame) -> Detections:
        if frame.truth is None:
            raise SorterError(
                "the oracle detector needs simulator ground truth, but this frame has none "
                "(a real camera?); set detector.type to onnxruntime, tensorrt or torch"
            )
        rng = np.random.default_rng([self._seed, frame.frame_index])
        n_cls = len(self.class_names)
        boxes: list[tuple[float, float, float, float]] = []
        scores: list[float] = []
        classes: list[int] = []
        for obj in frame.truth:
            if obj.visible_fraction < self._min_visible:
                continue
            if rng.random() < self._miss_rate:
                continue
            cls = obj.class_id
            if n_cls > 1 and rng.random() < self._confusion:
                cls = int((cls + rng.integers(1, n_cls)) % n_cls)
            x1, y1, x2, y2 = obj.box_px
            j = rng.normal(0.0, self._jitter, 4) if self._jitter > 0 else np.zeros(4)
            bx1, by1 = x1 + j[0], y1 + j[1]
            bx2, by2 = max(bx1 + 1.0, x2 + j[2]), max(by1 + 1.0, y2 + j[3])
            boxes.append((bx1, by1, bx2, by2))
            scores.append(float(rng.uniform(0.55, 0.99)))
            classes.append(cls)
        for _ in range(int(rng.poisson(self._fp_rate))):
            w = float(rng.uniform(30.0, 200.0))
            h = float(rng.uniform(30.0, 200.0))
            x = float(rng.uniform(0.0, self._width_px - w))
            y = float(rng.uniform(0.0, self._height_px - h))
            boxes.append((x, y, x + w, y + h))
            scores.append(float(rng.uniform(0.3, 0.7)))
            classes.append(int(rng.integers(0, n_cls)))
        if not boxes:
            return Detections.empty()
        return Detections(
            boxes_px=np.asarray(boxes, np.float32),
            scores=np.asarray(scores, np.float32),
            class_ids=np.asarray(classes, np.int32),
        )

    def close(self) -> None:
        return None


def create(cfg: Config, class_names: tuple[str, ...]) -> OracleDetector:
    """The ``detect`` registry's factory for ``detector.type: oracle`` (needs the simulated camera's ground truth)."""
    if cfg.camera.type != "sim":
        raise ConfigError(
            f"detector.type = 'oracle' needs the simulated camera, but camera.type = {cfg.camera.type!r}; "
            "use one of onnxruntime, tensorrt, torch"
        )
    o = cfg.detector.oracle
    return OracleDetector(
        class_names,
        miss_rate=o.miss_rate,
        class_confusion=o.class_confusion,
        false_positives_per_frame=o.false_positives_per_frame,
        box_jitter_px=o.box_jitter_px,
        min_visible_fraction=o.min_visible_fraction,
        seed=o.seed,
        image_size_px=(cfg.camera.width_px, cfg.camera.height_px),
    )
