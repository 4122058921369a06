"""COCO-format datasets: read a plant's annotated frames, write rendered ones.

Reading maps COCO categories to the model's classes *by name*; annotations of
other categories are skipped (and counted in the log). ``iscrowd: 1`` or
``ignore: 1`` marks an object to be ignored (neither learned nor scored).
Boxes are COCO ``[x, y, width, height]`` in pixels.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sorter.errors import ConfigError
from sorter.train.samples import Sample, make_sample

log = logging.getLogger(__name__)


class CocoDataset:
    """A COCO annotation file plus its image folder, images decoded on access.

    Attributes:
        class_names: the model's classes; ``class_ids`` in samples index into it.
        coco: the parsed annotation file (``images``, ``annotations``, ``categories``).
    """

    def __init__(self, annotations: str | Path, images_dir: str | Path | None, class_names: tuple[str, ...]) -> None:
        ann_path = Path(annotations)
        try:
            self.coco: dict[str, Any] = json.loads(ann_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"COCO annotation file '{ann_path}' does not exist; pass the path of its annotations JSON"
            ) from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"COCO annotation file '{ann_path}' is not valid JSON ({e})") from None
        for key in ("images", "annotations", "categories"):
            if key not in self.coco:
                raise ConfigError(f"COCO annotation file '{ann_path}' has no '{key}' list; is it COCO detection format?")
        self.class_names = class_names
        self.images_dir = Path(images_dir) if images_dir is not None else ann_path.parent
        cat_to_cls: dict[int, int] = {}
        skipped: Counter[str] = Counter()
        cat_names = {int(c["id"]): str(c["name"]) for c in self.coco["categories"]}
        for cid, name in cat_names.items():
            if name in class_names:
                cat_to_cls[cid] = class_names.index(name)
        self._images = sorted(self.coco["images"], key=lambda im: int(im["id"]))
        self._anns: dict[int, list[dict[str, Any]]] = {int(im["id"]): [] for im in self._images}
        for a in self.coco["annotations"]:
            cid = int(a["category_id"])
            if cid not in cat_to_cls:
                skipped[cat_names.get(cid, str(cid))] += 1
                continue
            self._anns.setdefault(int(a["image_id"]), []).append(a)
        self._cat_to_cls = cat_to_cls
        if skipped:
            log.warning("COCO '%s': skipped annotations of categories the model does not know: %s", ann_path, dict(skipped))
        if not cat_to_cls:
            raise ConfigError(
                f"COCO file '{ann_path}': none of its categories {sorted(cat_names.values())} "
                f"is a model class ({', '.join(class_names)}); "
                "rename the categories to the line's class names"
            )

    def __len__(self) -> int:
        return len(self._images)

    def image_info(self, index: int) -> dict[str, Any]:
        """The COCO ``images`` entry of sample ``index``."""
        info: dict[str, Any] = self._images[index]
        return info

    def __getitem__(self, index: int) -> Sample:
        info = self._images[index]
        path = self.images_dir / str(info["file_name"])
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"COCO image '{path}' cannot be read; check the images folder (--coco-images)")
        boxes, classes, ignore = [], [], []
        for a in self._anns.get(int(info["id"]), []):
            x, y, w, h = (float(v) for v in a["bbox"])
            if w <= 0 or h <= 0:
                continue
            boxes.append((x, y, x + w, y + h))
            classes.append(self._cat_to_cls[int(a["category_id"])])
            ignore.append(bool(a.get("iscrowd", 0)) or bool(a.get("ignore", 0)))
        return make_sample(np.asarray(image, np.uint8), boxes, classes, ignore, int(info["id"]))


def coco_dict(samples_meta: Iterable[tuple[dict[str, Any], Sample]], class_names: tuple[str, ...]) -> dict[str, Any]:
    """COCO ground truth for samples (image entries given, annotations from the samples).

    Ignored objects become ``iscrowd: 1`` so pycocotools neither rewards nor
    penalises detections on them.
    """
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for info, s in samples_meta:
        images.append(info)
        for b, c, ig in zip(s.boxes_px, s.class_ids, s.ignore, strict=True):
            x1, y1, x2, y2 = (float(v) for v in b)
            w, h = x2 - x1, y2 - y1
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": int(info["id"]),
                    "category_id": int(c) + 1,
                    "bbox": [round(x1, 2), round(y1, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2),
                    "iscrowd": int(bool(ig)),
                }
            )
    cats = [{"id": i + 1, "name": n, "supercategory": "material"} for i, n in enumerate(class_names)]
    return {"images": images, "annotations": anns, "categories": cats}


def write_coco(
    samples: Iterable[Sample], out_dir: str | Path, class_names: tuple[str, ...], ext: str = ".png", jpeg_quality: int = 95
) -> Path:
    """Write samples as a COCO dataset: ``out_dir/images/*`` and ``out_dir/annotations.json``.

    Returns:
        Path of the annotations file.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in (".jpg", ".jpeg") else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    pairs = []
    for i, s in enumerate(samples):
        name = f"images/{i:06d}{ext}"
        if not cv2.imwrite(str(out / name), s.image, params):
            raise OSError(f"cannot write image '{out / name}'")
        h, w = s.image.shape[:2]
        info = {"id": s.image_id if s.image_id else i + 1, "file_name": name, "width": int(w), "height": int(h)}
        pairs.append((info, s))
    ann = out / "annotations.json"
    tmp = ann.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(coco_dict(pairs, class_names)), encoding="utf-8")
    tmp.replace(ann)
    return ann


def detections_to_coco(image_id: int, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> list[dict[str, Any]]:
    """COCO result entries for one image's detections (category id = class index + 1)."""
    out = []
    for b, s, c in zip(boxes, scores, class_ids, strict=True):
        x1, y1, x2, y2 = (float(v) for v in b)
        out.append({"image_id": image_id, "category_id": int(c) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(s)})
    return out
