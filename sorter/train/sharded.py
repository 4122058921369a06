"""Detector evaluation sharded over Ray workers, with the same result as one process.

The set is cut into contiguous shards (on scene boundaries for rendered sets, so every shard renders its scenes
from their start exactly as one pass does); each worker builds the detector and the set, scores its shard, and
the shards' detections and ground truth, concatenated in set order, are scored once by pycocotools: the same
input as a single pass, so the same mAP to the last digit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.config import DetectorConfig
from sorter.errors import SorterError
from sorter.train.evaluate import ImageScores, score_images, summarize
from sorter.train.samples import SampleSet
from sorter.train.synth import SynthRecipe


@dataclass(frozen=True)
class EvalSet:
    """What to evaluate on, in a form every worker can open: a rendered recipe or a COCO file and its images."""

    recipe: SynthRecipe | None = None
    coco: Path | None = None
    coco_images: Path | None = None

    def open(self, class_names: tuple[str, ...]) -> SampleSet:
        if self.recipe is not None:
            from sorter.train.synth import SynthDataset

            return SynthDataset(self.recipe, class_names)
        from sorter.train.coco import CocoDataset

        assert self.coco is not None
        return CocoDataset(self.coco, self.coco_images, class_names)

    @property
    def align(self) -> int:
        """Shards start on multiples of this (a rendered scene is never split)."""
        return self.recipe.frames_per_scene if self.recipe is not None else 1


def shard_ranges(n_images: int, shards: int, align: int = 1) -> list[range]:
    """``shards`` contiguous ranges covering ``0..n_images`` (fewer when there are not enough blocks of ``align``)."""
    blocks = -(-n_images // align)
    shards = max(1, min(shards, blocks))
    out, start = [], 0
    for k in range(shards):
        stop = min(n_images, (blocks * (k + 1) // shards) * align)
        if stop > start:
            out.append(range(start, stop))
        start = stop
    return out


def _score_shard(detector: DetectorConfig, data: EvalSet, start: int, stop: int, class_names: tuple[str, ...],
                 confusion_min_score: float) -> ImageScores:
    """One shard, in a worker: build the detector and the set, score images ``start..stop``."""
    from sorter.config import Config
    from sorter.detect.registry import create_detector
    from sorter.entities import Frame

    det = create_detector(Config(detector=detector), class_names)
    try:
        def detect(img: Any) -> Any:
            return det.detect(Frame(image=img, t_capture_ns=0, s_capture_mm=0.0, frame_index=0))

        return score_images({"model": detect}, data.open(class_names), range(start, stop), class_names,
                            confusion_min_score, desc=f"eval {start}..{stop}")
    finally:
        det.close()


def evaluate_sharded(detector: DetectorConfig, data: EvalSet, class_names: tuple[str, ...], confusion_min_score: float,
                     shards: int, address: str | None = None, num_cpus: int | None = None,
                     on_shard: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """:func:`sorter.train.evaluate.evaluate` of ``detector`` on ``data``, in ``shards`` Ray tasks.

    Args:
        address: Ray cluster (None: a local instance with ``num_cpus`` CPUs).
        on_shard: called with (shards done, shards) as each finishes.
    """
    from sorter.sweep.cluster import map_in_order

    n = len(data.open(class_names))
    ranges = shard_ranges(n, shards, data.align)
    calls = [(detector, data, r.start, r.stop, class_names, confusion_min_score) for r in ranges]
    done = [0]

    def finished(_n: int, _result: Any) -> None:
        done[0] += 1
        if on_shard is not None:
            on_shard(done[0], len(ranges))

    parts = map_in_order(_score_shard, calls, address, num_cpus, finished)
    failed = [(r, p) for r, p in zip(ranges, parts, strict=True) if not isinstance(p, ImageScores)]
    if failed:
        r, e = failed[0]
        raise SorterError(f"evaluation shard {r.start}..{r.stop} failed on its worker: {e}")
    return summarize(ImageScores.merge(parts), class_names, confusion_min_score)["model"]
