"""``detector.type: example_blobs``: every bright blob is an object of class ``options.class_name``."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from sorter.entities import Detections, Frame


class BlobDetector:
    """A ``Detector`` that thresholds the image and boxes each connected bright region."""

    needs_pixels = True

    def __init__(self, class_names: tuple[str, ...], class_id: int, threshold: int, min_area_px: int) -> None:
        self.class_names = class_names
        self._class_id = class_id
        self._threshold = threshold
        self._min_area_px = min_area_px

    def detect(self, frame: Frame) -> Detections:
        gray = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        _n, _labels, stats, _centroids = cv2.connectedComponentsWithStats((gray > self._threshold).astype(np.uint8))
        blobs = [s for s in stats[1:] if s[cv2.CC_STAT_AREA] >= self._min_area_px]
        if not blobs:
            return Detections.empty()
        boxes = np.array([[s[0], s[1], s[0] + s[2], s[1] + s[3]] for s in blobs], np.float32)
        return Detections(
            boxes_px=boxes,
            scores=np.full(len(blobs), 0.9, np.float32),
            class_ids=np.full(len(blobs), self._class_id, np.int32),
        )

    def close(self) -> None:
        return None


def create(cfg: Any, class_names: tuple[str, ...]) -> BlobDetector:
    """Factory of the ``sorter.detectors`` entry point."""
    o = dict(cfg.detector.options)
    name = str(o.get("class_name", class_names[0]))
    return BlobDetector(class_names, class_names.index(name), int(o.get("threshold", 128)), int(o.get("min_area_px", 20)))
