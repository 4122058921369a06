"""COCO exchange: a batch out as a CVAT "COCO 1.0" dataset, COCO files (CVAT's or anyone's) back in, validated.

Export layout (what CVAT imports as "COCO 1.0", zipped or as a folder)::

    out/annotations/instances_default.json
    out/images/<file>.png

Each frame's labels are exported when it has them, else the model's
predictions at or above ``min_score`` as pre-annotations (their ``score``
kept on the annotation). Category ids are the class index + 1, boxes COCO
``[x, y, width, height]`` in pixels.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sorter.errors import ConfigError
from sorter.train.data.batch import IMAGES_DIR, Batch, Box, FrameEntry
from sorter.train.data.classmap import ClassMap
from sorter.train.data.validate import Empty, ImportReport, check_duplicates, empty_frame, map_boxes

CVAT_ANNOTATIONS = "annotations/instances_default.json"


def _boxes_for_export(entry: FrameEntry, min_score: float, use_predictions: bool) -> list[Box]:
    if entry.labels is not None and not use_predictions:
        return list(entry.labels)
    return [p for p in entry.predictions if p.score is None or p.score >= min_score]


def export_coco(
    batch: Batch, out_dir: Path, *, min_score: float = 0.3, predictions: bool = False, copy_images: bool = True
) -> Path:
    """Write ``batch`` as a CVAT COCO 1.0 dataset in ``out_dir``; returns the annotation file.

    Args:
        batch: the frames.
        out_dir: destination folder.
        min_score: lowest prediction score exported as a pre-annotation.
        predictions: export predictions even for labelled frames.
        copy_images: also copy the images to ``out_dir/images`` (CVAT creates the task from them).
    """
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for i, entry in enumerate(batch.frames):
        name = Path(entry.file).name
        images.append(
            {
                "id": i + 1,
                "file_name": name,
                "width": entry.width_px,
                "height": entry.height_px,
                "license": 0,
                "flickr_url": "",
                "coco_url": "",
                "date_captured": 0,
            }
        )
        for b in _boxes_for_export(entry, min_score, predictions):
            x1, y1, x2, y2 = b.box_px
            ann: dict[str, Any] = {
                "id": len(anns) + 1,
                "image_id": i + 1,
                "category_id": batch.class_names.index(b.label) + 1,
                "segmentation": [],
                "area": round((x2 - x1) * (y2 - y1), 3),
                "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                "iscrowd": 0,
                "attributes": {"occluded": False, "rotation": 0.0, **b.attrs},
            }
            if b.score is not None:
                ann["score"] = round(b.score, 5)
            anns.append(ann)
        if copy_images:
            (out_dir / "images").mkdir(parents=True, exist_ok=True)
            shutil.copy2(batch.image_path(entry), out_dir / "images" / name)
    doc = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "sorter batch", "url": "", "version": "", "year": ""},
        "categories": [{"id": k + 1, "name": n, "supercategory": ""} for k, n in enumerate(batch.class_names)],
        "images": images,
        "annotations": anns,
    }
    path = out_dir / CVAT_ANNOTATIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def _load(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"COCO file '{path}' does not exist; pass the annotations JSON exported by the labelling tool"
        ) from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"COCO file '{path}' is not valid JSON ({e}); export it again") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise ConfigError(f"COCO file '{path}' has no '{key}' list; export as COCO 1.0 (detection), not another format")
    _check_fields(doc, path)
    return doc


#: the fields every entry of each list needs, and what each must be
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "images": {"id": (int,), "file_name": (str,), "width": (int,), "height": (int,)},
    "annotations": {"image_id": (int,), "category_id": (int,), "bbox": (list,)},
    "categories": {"id": (int,), "name": (str,)},
}


def _check_fields(doc: dict[str, Any], path: Path) -> None:
    """Refuse entries without the fields COCO 1.0 requires (naming the first such entry), before anything reads them."""
    for key, fields in _FIELDS.items():
        for k, entry in enumerate(doc[key]):
            if not isinstance(entry, dict):
                raise ConfigError(f"COCO file '{path}': {key}[{k}] is not an object; export as COCO 1.0 (detection)")
            for name, types in fields.items():
                v = entry.get(name)
                if not isinstance(v, types) or isinstance(v, bool):
                    what = "is missing" if name not in entry else f"is {v!r}, not {' or '.join(t.__name__ for t in types)}"
                    raise ConfigError(
                        f"COCO file '{path}': {key}[{k}] (id {entry.get('id')!r}) field '{name}' {what}; "
                        "COCO 1.0 needs it (re-export from the labelling tool, or add it)"
                    )
            bbox = entry.get("bbox") or []
            if key == "annotations" and (len(bbox) != 4 or not all(isinstance(x, (int, float)) for x in bbox)):
                raise ConfigError(
                    f"COCO file '{path}': annotations[{k}] (id {entry.get('id')!r}) bbox {bbox!r} is not [x, y, width, height]"
                )


def read_coco(path: Path, class_map: ClassMap, *, empty: Empty = "refuse") -> tuple[dict[str, list[Box] | None], ImportReport]:
    """Labels per image file name from a COCO file, validated; ``None`` for a frame with no labels that was skipped.

    Raises:
        LabelImportError: listing every problem (unknown classes when refused, boxes outside the image,
            duplicate images, annotations of missing images, frames without labels when refused).
    """
    doc = _load(path)
    report = ImportReport()
    cats = {int(c["id"]): str(c["name"]) for c in doc["categories"]}
    used = [cats.get(int(a["category_id"]), f"<category {a['category_id']}>") for a in doc["annotations"]]
    class_map.check(used, f"COCO file '{path}'")
    check_duplicates([str(im["file_name"]) for im in doc["images"]], "image file", report)
    check_duplicates([str(im["id"]) for im in doc["images"]], "image id", report)
    by_image: dict[int, list[dict[str, Any]]] = {int(im["id"]): [] for im in doc["images"]}
    for a in doc["annotations"]:
        iid = int(a["image_id"])
        if iid not in by_image:
            report.problems.append(f"annotation {a.get('id')} refers to image id {iid}, which is not in 'images'")
            continue
        if int(a["category_id"]) not in cats:
            report.problems.append(f"annotation {a.get('id')} has category id {a['category_id']}, which is not in 'categories'")
            continue
        by_image[iid].append(a)
    out: dict[str, list[Box] | None] = {}
    for im in doc["images"]:
        name = str(im["file_name"])
        w, h = int(im["width"]), int(im["height"])
        raw = []
        for a in by_image[int(im["id"])]:
            x, y, bw, bh = (float(v) for v in a["bbox"])
            attrs = {str(k): str(v) for k, v in (a.get("attributes") or {}).items() if k not in ("occluded", "rotation")}
            if a.get("iscrowd"):
                attrs["ignore"] = "1"
            raw.append(((x, y, x + bw, y + bh), cats[int(a["category_id"])], attrs))
        boxes = map_boxes(raw, w, h, class_map, f"image {name!r}", report)
        if not raw:
            out[name] = [] if empty_frame(name, empty, report) else None
            continue
        report.images += 1
        report.boxes += len(boxes)
        out[name] = boxes
    return out, report


def merge_labels(batch: Batch, labels: dict[str, list[Box] | None], report: ImportReport, source: str) -> Batch:
    """Batch with imported labels set on the frames whose file names match (by base name).

    Raises:
        LabelImportError: when some labelled images are not frames of the batch.
    """
    by_name = {Path(f.file).name: k for k, f in enumerate(batch.frames)}
    frames = list(batch.frames)
    for name, boxes in labels.items():
        k = by_name.get(Path(name).name)
        if k is None:
            report.problems.append(
                f"image {name!r} is not a frame of the batch '{batch.root}'; import into the batch it came from"
            )
            continue
        if boxes is not None:
            frames[k] = _with_labels(frames[k], boxes)
    report.raise_if_problems(source)
    return batch.with_frames(frames)


def _with_labels(entry: FrameEntry, boxes: Sequence[Box]) -> FrameEntry:
    from dataclasses import replace

    return replace(entry, labels=tuple(boxes))


def batch_from_coco(
    path: Path, images_dir: Path, out_dir: Path, class_map: ClassMap, *, empty: Empty = "refuse", recording: str = ""
) -> tuple[Batch, ImportReport]:
    """A new batch from a foreign COCO dataset (images copied, labels validated and mapped).

    Duplicate image content (same bytes under two names) is a problem too.
    """
    labels, report = read_coco(path, class_map, empty=empty)
    frames: list[FrameEntry] = []
    digests: list[str] = []
    doc = _load(path)
    sizes = {str(im["file_name"]): (int(im["width"]), int(im["height"])) for im in doc["images"]}
    (out_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    for k, (name, boxes) in enumerate(labels.items()):
        if boxes is None:
            continue
        src = images_dir / name
        if not src.is_file():
            report.problems.append(f"image {name!r} is not in '{images_dir}'; pass the images folder with --images")
            continue
        data = src.read_bytes()
        digests.append(hashlib.sha256(data).hexdigest()[:16])
        dst = f"{IMAGES_DIR}/{k:06d}{src.suffix.lower()}"
        (out_dir / dst).write_bytes(data)
        w, h = sizes[name]
        frames.append(
            FrameEntry(
                file=dst,
                width_px=w,
                height_px=h,
                source=f"{path.name}:{name}",
                recording=recording,
                frame_index=k,
                labels=tuple(boxes),
            )
        )
    check_duplicates(digests, "image content (sha256 prefix)", report)
    report.raise_if_problems(f"COCO file '{path}'")
    return Batch(
        out_dir, class_map.targets, tuple(frames), {"imported_from": str(path), "class_map": class_map.to_dict()}
    ), report
