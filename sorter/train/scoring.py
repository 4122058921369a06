"""Run detector models over evaluation images once and keep everything the honest metrics need.

Each model sees each image once (several models in one pass share the decoding); detections are kept down to
``min_score`` (0.01) for the AP curves. Ground truth comes from a dataset split, any COCO file, or the
rendered held-out set.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sorter.config import DetectorConfig
from sorter.entities import MATERIAL_CLASSES, Detections, Frame, ImageArray
from sorter.errors import ConfigError
from sorter.train.honest import ScoredImage, light_tag

GroundTruth = tuple[ImageArray, np.ndarray, np.ndarray, np.ndarray, dict[str, str], tuple[dict[str, str], ...]]


def detectors(
    models: Sequence[Path], precision: str = "fp32", min_score: float = 0.01, backend: str = "onnxruntime", device: str = "cpu"
) -> list[Any]:
    """One detector per model file."""
    from sorter.config import Config
    from sorter.detect.registry import create_detector

    return [
        create_detector(
            Config(detector=DetectorConfig(type=backend, model=str(m), precision=precision, min_score=min_score, device=device)),
            MATERIAL_CLASSES,
        )
        for m in models
    ]


def coco_truth(annotations: Path, images_dir: Path) -> Iterator[GroundTruth]:
    """Images and ground truth of a COCO file (classes by name; ``iscrowd`` ignored; ``tags`` and ``attributes`` kept)."""
    try:
        doc = json.loads(annotations.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"COCO file '{annotations}' does not exist") from None
    cats = {int(c["id"]): str(c["name"]) for c in doc["categories"]}
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in doc["annotations"]:
        by_image.setdefault(int(a["image_id"]), []).append(a)
    for im in sorted(doc["images"], key=lambda x: int(x["id"])):
        path = images_dir / str(im["file_name"])
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"image '{path}' cannot be read; check the images folder")
        boxes, classes, ignore, attrs = [], [], [], []
        for a in by_image.get(int(im["id"]), []):
            name = cats[int(a["category_id"])]
            if name not in MATERIAL_CLASSES:
                continue
            x, y, w, h = (float(v) for v in a["bbox"])
            boxes.append((x, y, x + w, y + h))
            classes.append(MATERIAL_CLASSES.index(name))
            ignore.append(bool(a.get("iscrowd", 0)))
            attrs.append({str(k): str(v) for k, v in (a.get("attributes") or {}).items() if k not in ("occluded", "rotation")})
        tags = {str(k): str(v) for k, v in (im.get("tags") or {}).items()}
        tags.setdefault("light", light_tag(np.asarray(image, np.uint8)))
        yield (
            np.asarray(image, np.uint8),
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(classes, np.int32),
            np.asarray(ignore, bool),
            tags,
            tuple(attrs),
        )


def rendered_truth(n_images: int, seed: int | None = None) -> Iterator[GroundTruth]:
    """The rendered held-out set (default seed: the one never trained on)."""
    from sorter.train.synth import HELDOUT_SEED, SynthDataset, SynthRecipe

    data = SynthDataset(SynthRecipe(n_images=n_images, seed=HELDOUT_SEED if seed is None else seed), MATERIAL_CLASSES)
    for i in range(len(data)):
        s = data[i]
        yield s.image, s.boxes_px, s.class_ids, s.ignore, {}, ()


def score(truth: Iterator[GroundTruth], detect_fns: Sequence[Callable[[ImageArray], Detections]]) -> list[list[ScoredImage]]:
    """Per model, the scored images (every model sees every image)."""
    out: list[list[ScoredImage]] = [[] for _ in detect_fns]
    for image, boxes, classes, ignore, tags, attrs in truth:
        h, w = image.shape[:2]
        for k, fn in enumerate(detect_fns):
            det = fn(image)
            out[k].append(ScoredImage((h, w), boxes, classes, ignore, det.boxes_px, det.scores, det.class_ids, tags, attrs))
    return out


def frame_fn(detector: Any) -> Callable[[ImageArray], Detections]:
    def fn(image: ImageArray) -> Detections:
        det: Detections = detector.detect(Frame(image, 0, 0.0, 0))
        return det

    return fn


def score_models(models: Sequence[Path], truth: Iterator[GroundTruth], precision: str = "fp32") -> list[list[ScoredImage]]:
    """Scored images of several models on the same ground truth."""
    dets = detectors(models, precision)
    try:
        return score(truth, [frame_fn(d) for d in dets])
    finally:
        for d in dets:
            d.close()


def score_split(model: Path, dataset: Path, split: str, precision: str = "fp32") -> list[ScoredImage]:
    """One model on a dataset split."""
    return score_models([model], coco_truth(dataset / f"{split}.json", dataset), precision)[0]
