"""Annotated images as the trainer and evaluator see them. Pure numpy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sorter.entities import ImageArray


@dataclass(frozen=True)
class Sample:
    """One annotated image.

    Attributes:
        image: HxWx3 BGR uint8.
        boxes_px: ``(N, 4)`` float32 ``(x1, y1, x2, y2)`` in this image's pixels.
        class_ids: ``(N,)`` int32 class indices (into the dataset's class names).
        ignore: ``(N,)`` bool; True for objects neither to be learned nor scored
            (mostly hidden or out of frame: detecting them is not an error, missing them neither).
        image_id: stable id within the dataset.
    """

    image: ImageArray
    boxes_px: npt.NDArray[np.float32]
    class_ids: npt.NDArray[np.int32]
    ignore: npt.NDArray[np.bool_]
    image_id: int = 0


class SampleSet(Protocol):
    """A random-access dataset of :class:`Sample`."""

    class_names: tuple[str, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


def make_sample(
    image: ImageArray,
    boxes: Sequence[Sequence[float]] | npt.NDArray[np.float32],
    class_ids: Sequence[int] | npt.NDArray[np.int32],
    ignore: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
    image_id: int = 0,
) -> Sample:
    """Build a :class:`Sample` with normalised array types."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    c = np.asarray(class_ids, dtype=np.int32).reshape(-1)
    ig = np.zeros(c.shape, bool) if ignore is None else np.asarray(ignore, dtype=bool).reshape(-1)
    if not b.shape[0] == c.shape[0] == ig.shape[0]:
        raise ValueError(f"sample {image_id}: {b.shape[0]} boxes, {c.shape[0]} classes and {ig.shape[0]} ignore flags must match")
    return Sample(image, b, c, ig, image_id)
