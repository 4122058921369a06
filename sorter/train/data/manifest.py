"""Datasets with identity: labelled batches -> a content-hashed manifest, images by hash, COCO files per split.

Layout::

    dataset/
      manifest.json       format, hash, classes, class maps, sources, split settings, one item per image
      images/<sha>.png    each image once, named by the first 16 hex digits of its SHA-256
      train.json          COCO of the train split (and val.json, test.json): what ``sorter train`` and
      val.json            ``sorter eval-detector`` read
      test.json
      report.json         balance report (classes, sizes, conditions per split)

The manifest hash is the SHA-256 of the canonical JSON of what a model learns from and is judged on: the
class names, and per image its content hash, split, recording, boxes and classes. Two datasets with the same
hash are the same data, wherever they were built; training runs and registry entries record it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.errors import ConfigError
from sorter.train.data.batch import Batch, Box, FrameEntry
from sorter.train.data.splits import SplitConfig, split_frames

FORMAT = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Item:
    """One image of a dataset."""

    image: str
    sha256: str
    width_px: int
    height_px: int
    recording: str
    frame_index: int
    t_capture_ns: int
    split: str
    boxes: tuple[Box, ...]
    tags: dict[str, str]
    source: str
    eval_only: bool = False

    @property
    def negative(self) -> bool:
        return not self.boxes

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "sha256": self.sha256,
            "width_px": self.width_px,
            "height_px": self.height_px,
            "recording": self.recording,
            "frame_index": self.frame_index,
            "t_capture_ns": self.t_capture_ns,
            "split": self.split,
            "negative": self.negative,
            "eval_only": self.eval_only,
            "tags": self.tags,
            "source": self.source,
            "boxes": [b.to_dict() for b in self.boxes],
        }


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_hash(class_names: Sequence[str], items: Sequence[Item]) -> str:
    """SHA-256 of the canonical content (see the module docstring)."""
    body = {
        "class_names": list(class_names),
        "items": sorted(
            (
                [
                    it.sha256,
                    it.split,
                    it.recording,
                    [[b.label, [round(v, 2) for v in b.box_px], b.attrs.get("ignore", "")] for b in it.boxes],
                ]
                for it in items
            ),
            key=lambda x: (str(x[0]), str(x[1])),
        ),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def coco_of(items: Sequence[Item], class_names: Sequence[str]) -> dict[str, Any]:
    """COCO ground truth of some items (ignored boxes as ``iscrowd``; attributes kept)."""
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for k, it in enumerate(items):
        images.append(
            {
                "id": k + 1,
                "file_name": it.image,
                "width": it.width_px,
                "height": it.height_px,
                "recording": it.recording,
                "frame_index": it.frame_index,
                "t_capture_ns": it.t_capture_ns,
                "tags": it.tags,
            }
        )
        for b in it.boxes:
            x1, y1, x2, y2 = b.box_px
            attrs = {a: v for a, v in b.attrs.items() if a != "ignore"}
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": k + 1,
                    "category_id": list(class_names).index(b.label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(b.attrs.get("ignore") == "1"),
                    "attributes": attrs,
                }
            )
    return {"images": images, "annotations": anns, "categories": [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]}


def build_dataset(
    out_dir: Path,
    batches: Sequence[Batch],
    split: SplitConfig,
    eval_batches: Sequence[Batch] = (),
) -> dict[str, Any]:
    """Build a dataset folder from labelled batches; returns the manifest.

    Only labelled frames are taken (``labels`` not None; ``[]`` is a negative). An image present twice (same
    content) is taken once. Frames of ``eval_batches`` are never trained on: in the train split they are dropped.

    Raises:
        ConfigError: when ``out_dir`` already holds a dataset, the batches disagree on classes, or nothing is labelled.
    """
    if (out_dir / MANIFEST).exists():
        raise ConfigError(f"'{out_dir}' already holds a dataset; build into a new folder (datasets are never changed in place)")
    all_batches = [*batches, *eval_batches]
    if not all_batches:
        raise ConfigError(
            "no batches given; pass --batch DIR (a labelled batch from 'sorter collect' or 'sorter labels from-coco')"
        )
    class_names = all_batches[0].class_names
    for b in all_batches:
        if b.class_names != class_names:
            raise ConfigError(
                f"batch '{b.root}' has classes {b.class_names}, unlike {class_names}; build from batches of one model"
            )
    chosen: list[tuple[Batch, FrameEntry, bool]] = []
    for b in batches:
        chosen += [(b, f, False) for f in b.frames if f.labels is not None]
    for b in eval_batches:
        chosen += [(b, f, True) for f in b.frames if f.labels is not None]
    if not chosen:
        raise ConfigError("none of the frames is labelled yet; import labels first ('sorter labels import')")
    digests = [file_digest(b.image_path(f)) for b, f, _ in chosen]
    splits = split_frames([f.recording for _, f, _ in chosen], [f.t_capture_ns for _, f, _ in chosen], split)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    items: dict[str, Item] = {}
    for (b, f, eval_only), sha, sp in zip(chosen, digests, splits, strict=True):
        if sp == "guard" or (eval_only and sp == "train"):
            continue
        if sha in items:
            if items[sha].eval_only and not eval_only:
                items[sha] = Item(**{**items[sha].__dict__, "eval_only": False})
            continue
        name = f"images/{sha[:16]}{Path(f.file).suffix.lower()}"
        shutil.copy2(b.image_path(f), out_dir / name)
        items[sha] = Item(
            name,
            sha,
            f.width_px,
            f.height_px,
            f.recording,
            f.frame_index,
            f.t_capture_ns,
            sp,
            tuple(f.labels or ()),
            dict(f.tags),
            f"{b.root.name}/{f.file}",
            eval_only,
        )
    ordered = sorted(items.values(), key=lambda it: (it.recording, it.t_capture_ns, it.sha256))
    for split_name in SPLITS:
        subset = [it for it in ordered if it.split == split_name]
        (out_dir / f"{split_name}.json").write_text(json.dumps(coco_of(subset, class_names)), encoding="utf-8")
    manifest = {
        "format": FORMAT,
        "hash": manifest_hash(class_names, ordered),
        "class_names": list(class_names),
        "class_maps": [b.info.get("class_map") for b in all_batches if b.info.get("class_map")],
        "sources": sorted({f"{b.root}" for b in all_batches}),
        "recordings": sorted({it.recording for it in ordered}),
        "split": split.to_dict(),
        "counts": {sp: sum(1 for it in ordered if it.split == sp) for sp in SPLITS},
        "dropped_guard": sum(1 for s in splits if s == "guard"),
        "items": [it.to_dict() for it in ordered],
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def read_manifest(root: Path) -> dict[str, Any]:
    """Read ``root/manifest.json``."""
    path = root / MANIFEST
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"'{root}' is not a dataset: {MANIFEST} is missing (build one with 'sorter dataset build')") from None
    if doc.get("format") != FORMAT:
        raise ConfigError(f"'{path}' has format {doc.get('format')!r}; this sorter reads dataset format {FORMAT}")
    return doc


def verify(root: Path) -> list[str]:
    """Problems with a dataset folder: images changed or missing, or a hash that does not match its content."""
    doc = read_manifest(root)
    problems = []
    items = []
    for d in doc["items"]:
        path = root / d["image"]
        if not path.is_file():
            problems.append(f"image {d['image']} is missing")
            continue
        if file_digest(path) != d["sha256"]:
            problems.append(f"image {d['image']} has changed since the dataset was built")
        items.append(
            Item(
                d["image"],
                d["sha256"],
                d["width_px"],
                d["height_px"],
                d["recording"],
                d["frame_index"],
                d["t_capture_ns"],
                d["split"],
                tuple(Box.from_dict(b) for b in d["boxes"]),
                d["tags"],
                d["source"],
            )
        )
    if manifest_hash(doc["class_names"], items) != doc["hash"]:
        problems.append("the manifest hash does not match its items; the manifest was edited by hand")
    return problems
