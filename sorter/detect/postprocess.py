"""Network outputs -> :class:`~sorter.entities.Detections` in frame pixels. Pure numpy.

The network already picked peaks (NMS-free), so this only thresholds,
undoes the letterbox and drops boxes that collapse when clipped to the frame.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sorter.detect.preprocess import Letterbox
from sorter.entities import Detections

#: Boxes thinner than this after clipping (frame pixels) are dropped.
MIN_SIDE_PX = 1.0


def to_detections(
    boxes: npt.NDArray[np.floating],
    scores: npt.NDArray[np.floating],
    classes: npt.NDArray[np.integer],
    letterbox: Letterbox,
    min_score: float,
    num_classes: int,
) -> Detections:
    """Convert one image's decoded outputs.

    Args:
        boxes: ``(1, K, 4)`` or ``(K, 4)`` boxes in network-input pixels.
        scores: ``(1, K)`` or ``(K,)`` scores in [0, 1].
        classes: ``(1, K)`` or ``(K,)`` class ids.
        letterbox: placement of the frame in the network input.
        min_score: keep scores >= this.
        num_classes: class ids outside ``[0, num_classes)`` are dropped (guards corrupt engines).

    Returns:
        Detections in frame pixels, highest score first.
    """
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    keep = np.flatnonzero(s >= min_score)
    if keep.size == 0:
        return Detections.empty()
    c = np.asarray(classes).reshape(-1)[keep].astype(np.int32)
    b = letterbox.to_source(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)[keep])
    s = s[keep]
    ok = (c >= 0) & (c < num_classes) & (b[:, 2] - b[:, 0] >= MIN_SIDE_PX) & (b[:, 3] - b[:, 1] >= MIN_SIDE_PX)
    order = np.argsort(-s[ok], kind="stable")
    return Detections(
        boxes_px=np.ascontiguousarray(b[ok][order], dtype=np.float32),
        scores=np.ascontiguousarray(s[ok][order], dtype=np.float32),
        class_ids=np.ascontiguousarray(c[ok][order], dtype=np.int32),
    )
