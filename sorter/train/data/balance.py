"""Balance report of a dataset: objects per class, size and condition, per split, with warnings. Pure.

Sizes are COCO's box-area buckets in image pixels; conditions are the images' tags (``light``...), the belt
region of each box (left / centre / right third of the image) and the objects' ``state`` attribute when
labelled. Warnings name what a plant should collect more of.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from sorter.train.matching import SIZE_RANGES

MIN_PER_CLASS = 10
REGIONS = ("left", "centre", "right")


def size_bucket(area_px: float) -> str:
    for name in ("small", "medium", "large"):
        lo, hi = SIZE_RANGES[name]
        if lo <= area_px <= hi:
            return name
    return "large"


def balance_report(items: Sequence[dict[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """Counts per split from manifest items (``manifest["items"]``), and warnings."""
    out: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        its = [it for it in items if it["split"] == split]
        classes: Counter[str] = Counter()
        sizes: dict[str, Counter[str]] = defaultdict(Counter)
        regions: dict[str, Counter[str]] = defaultdict(Counter)
        states: dict[str, Counter[str]] = defaultdict(Counter)
        tags: dict[str, Counter[str]] = defaultdict(Counter)
        ignored = 0
        for it in its:
            for k, v in it.get("tags", {}).items():
                tags[k][v] += 1
            for b in it["boxes"]:
                if (b.get("attrs") or {}).get("ignore") == "1":
                    ignored += 1
                    continue
                x1, y1, x2, y2 = b["box_px"]
                classes[b["label"]] += 1
                sizes[b["label"]][size_bucket((x2 - x1) * (y2 - y1))] += 1
                regions[b["label"]][REGIONS[min(2, int(3 * ((x1 + x2) / 2) / max(it["width_px"], 1)))]] += 1
                if "state" in (b.get("attrs") or {}):
                    states[b["label"]][b["attrs"]["state"]] += 1
        out[split] = {
            "images": len(its),
            "negative_images": sum(1 for it in its if not it["boxes"]),
            "objects": sum(classes.values()),
            "ignored_objects": ignored,
            "per_class": {c: classes.get(c, 0) for c in class_names},
            "per_size": {c: dict(sizes[c]) for c in class_names if sizes[c]},
            "per_region": {c: dict(regions[c]) for c in class_names if regions[c]},
            "per_state": {c: dict(states[c]) for c in class_names if states[c]},
            "image_tags": {k: dict(v) for k, v in tags.items()},
        }
    warnings = []
    train, test = out["train"]["per_class"], out["test"]["per_class"]
    for c in class_names:
        if 0 < train[c] < MIN_PER_CLASS:
            warnings.append(f"only {train[c]} '{c}' objects to train on; collect at least {MIN_PER_CLASS}")
        if test[c] and not train[c]:
            warnings.append(f"'{c}' is in the test split but never in train: its score measures zero-shot transfer only")
        if train[c] and not test[c]:
            warnings.append(f"'{c}' has no test objects: its accuracy on this belt cannot be measured")
    if not out["train"]["negative_images"]:
        warnings.append("no bare-belt frames to train on; add an empty-belt capture ('sorter collect --empty-belt')")
    out["warnings"] = warnings
    return out


def format_report(report: dict[str, Any]) -> list[str]:
    """Readable lines of a balance report."""
    lines = []
    for split in ("train", "val", "test"):
        r = report[split]
        if not r["images"]:
            continue
        per = ", ".join(f"{c} {n}" for c, n in r["per_class"].items() if n)
        lines.append(f"{split}: {r['images']} images ({r['negative_images']} bare belt), {r['objects']} objects: {per or 'none'}")
    lines += [f"warning: {w}" for w in report["warnings"]]
    return lines
