"""Datasets letterboxed to the network input and held in memory (and cached on disk as ``.npz``).

Decoding and resizing 1280x720 frames every epoch would cost more than the
training step on a small CPU, so each dataset is letterboxed once, with the
very preprocessing the detector uses at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sorter.detect.preprocess import letterbox_image
from sorter.detect.spec import ModelSpec
from sorter.train.progress import Progress
from sorter.train.samples import SampleSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackedSet:
    """Letterboxed images and their boxes in network-input pixels.

    Attributes:
        images: ``(N, H, W, 3)`` uint8 BGR at the network input size.
        boxes: ``(M, 4)`` float32 boxes of all images, concatenated.
        classes: ``(M,)`` int32.
        ignore: ``(M,)`` bool.
        offsets: ``(N + 1,)`` image ``i`` owns rows ``offsets[i]:offsets[i+1]``.
        class_names: class names of ``classes``.
    """

    images: npt.NDArray[np.uint8]
    boxes: npt.NDArray[np.float32]
    classes: npt.NDArray[np.int32]
    ignore: npt.NDArray[np.bool_]
    offsets: npt.NDArray[np.int64]
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def annotations(self, i: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
        """Boxes, classes and ignore flags of image ``i``."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.boxes[a:b], self.classes[a:b], self.ignore[a:b]

    def save(self, path: Path) -> None:
        """Write as an uncompressed ``.npz`` (atomic)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            images=self.images,
            boxes=self.boxes,
            classes=self.classes,
            ignore=self.ignore,
            offsets=self.offsets,
            class_names=np.array(self.class_names),
        )
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> PackedSet:
        """Read :meth:`save` output."""
        with np.load(path) as z:
            return PackedSet(
                z["images"], z["boxes"], z["classes"], z["ignore"], z["offsets"], tuple(str(c) for c in z["class_names"])
            )


def pack(ds: SampleSet, spec: ModelSpec, class_names: tuple[str, ...], desc: str = "pack") -> PackedSet:
    """Letterbox every sample of ``ds`` to ``spec``'s input size; classes re-indexed to ``class_names`` by name."""
    remap = np.array([class_names.index(c) if c in class_names else -1 for c in ds.class_names], np.int32)
    n = len(ds)
    images = np.empty((n, spec.input_h_px, spec.input_w_px, 3), np.uint8)
    boxes, classes, ignore, offsets = [], [], [], [0]
    with Progress(n, desc) as bar:
        for i in range(n):
            s = ds[i]
            _, lb = letterbox_image(s.image, spec.input_w_px, spec.input_h_px, spec.pad_value, images[i])
            c = remap[s.class_ids] if s.class_ids.size else s.class_ids
            ok = c >= 0
            boxes.append(lb.to_input(s.boxes_px[ok]))
            classes.append(c[ok])
            ignore.append(s.ignore[ok])
            offsets.append(offsets[-1] + int(ok.sum()))
            bar.update()
    return PackedSet(
        images,
        np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        np.concatenate(classes).astype(np.int32) if classes else np.zeros(0, np.int32),
        np.concatenate(ignore).astype(bool) if ignore else np.zeros(0, bool),
        np.array(offsets, np.int64),
        class_names,
    )


def concat(sets: Sequence[PackedSet]) -> PackedSet:
    """Join packed sets of the same input size and classes."""
    if len(sets) == 1:
        return sets[0]
    offs = [np.int64(0)]
    for s in sets:
        offs.extend((s.offsets[1:] + offs[-1]).tolist())
    return PackedSet(
        np.concatenate([s.images for s in sets]),
        np.concatenate([s.boxes for s in sets]),
        np.concatenate([s.classes for s in sets]),
        np.concatenate([s.ignore for s in sets]),
        np.array(offs, np.int64),
        sets[0].class_names,
    )


def cached_pack(
    ds: SampleSet, spec: ModelSpec, class_names: tuple[str, ...], cache: Path | None, desc: str = "pack"
) -> PackedSet:
    """:func:`pack` with an on-disk cache at ``cache`` (None: no cache)."""
    if cache is not None and cache.exists():
        log.info("using cached packed dataset %s", cache)
        return PackedSet.load(cache)
    packed = pack(ds, spec, class_names, desc)
    if cache is not None:
        packed.save(cache)
    return packed
