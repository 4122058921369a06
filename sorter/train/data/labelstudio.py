"""Label Studio exchange: a batch as import tasks with predictions, and Label Studio JSON exports back in, validated.

Label Studio stores rectangles in *percent* of the image size
(``value.x``, ``y``, ``width``, ``height`` in 0..100, with
``original_width``/``original_height`` beside them). Export converts pixel boxes to
percent; import converts back and rounds to :data:`PIXEL_DECIMALS` so a box
that went out at pixel coordinates comes back identical.

Each task's ``data`` carries ``image`` (the URL Label Studio loads) and
``sorter_file`` (the frame's path in the batch), which is how an export is
matched to its frames. The model's detections go in as ``predictions``
(``model_version``, per-box ``score``); annotators start from them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sorter.errors import ConfigError
from sorter.train.data.batch import Batch, Box, FrameEntry
from sorter.train.data.classmap import ClassMap
from sorter.train.data.validate import Empty, ImportReport, check_duplicates, empty_frame, map_boxes

FROM_NAME = "label"
TO_NAME = "image"
PIXEL_DECIMALS = 3
#: Label Studio's URL prefix for files under its LOCAL_FILES_DOCUMENT_ROOT (local-files serving).
LOCAL_FILES_PREFIX = "/data/local-files/?d="


def labeling_config(class_names: Sequence[str]) -> str:
    """The Label Studio labelling interface for boxes of these classes."""
    labels = "\n".join(f'    <Label value="{n}"/>' for n in class_names)
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}\n  </RectangleLabels>\n'
        "</View>\n"
    )


def _result(b: Box, w: int, h: int, k: int) -> dict[str, Any]:
    x1, y1, x2, y2 = b.box_px
    r: dict[str, Any] = {
        "id": f"r{k}",
        "type": "rectanglelabels",
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "original_width": w,
        "original_height": h,
        "image_rotation": 0,
        "value": {
            "x": 100.0 * x1 / w,
            "y": 100.0 * y1 / h,
            "width": 100.0 * (x2 - x1) / w,
            "height": 100.0 * (y2 - y1) / h,
            "rotation": 0,
            "rectanglelabels": [b.label],
        },
    }
    if b.score is not None:
        r["score"] = float(b.score)
    if b.attrs:
        r["sorter_attrs"] = dict(b.attrs)  # ignore flags, object state: kept through the round trip
    return r


def image_url(entry: FrameEntry, batch: Batch, url_prefix: str | None) -> str:
    """URL of a frame for Label Studio: ``url_prefix`` + path relative to the batch, or local-files serving."""
    rel = entry.file
    if url_prefix is None:
        return LOCAL_FILES_PREFIX + quote(str((batch.root / rel).resolve()).lstrip("/"))
    return url_prefix.rstrip("/") + "/" + quote(rel)


def to_tasks(
    batch: Batch, *, url_prefix: str | None = None, min_score: float = 0.3, model_version: str = "sorter"
) -> list[dict[str, Any]]:
    """Label Studio import tasks for a batch: image, frame metadata, predictions; labels as annotations where present."""
    tasks = []
    for entry in batch.frames:
        w, h = entry.width_px, entry.height_px
        preds = [p for p in entry.predictions if p.score is None or p.score >= min_score]
        task: dict[str, Any] = {
            "data": {
                TO_NAME: image_url(entry, batch, url_prefix),
                "sorter_file": entry.file,
                "recording": entry.recording,
                "frame_index": entry.frame_index,
                "t_capture_ns": entry.t_capture_ns,
                "reasons": ",".join(entry.reasons),
            },
            "predictions": [
                {
                    "model_version": model_version,
                    "score": float(sum(p.score or 0.0 for p in preds) / len(preds)) if preds else 0.0,
                    "result": [_result(p, w, h, k) for k, p in enumerate(preds)],
                }
            ],
        }
        if entry.labels is not None:
            task["annotations"] = [{"result": [_result(b, w, h, k) for k, b in enumerate(entry.labels)]}]
        tasks.append(task)
    return tasks


def write_tasks(batch: Batch, path: Path, **kwargs: Any) -> Path:
    """Write :func:`to_tasks` as a JSON file Label Studio imports."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_tasks(batch, **kwargs), indent=1), encoding="utf-8")
    return path


def _px(v: float) -> float:
    return round(v, PIXEL_DECIMALS) + 0.0


RawBoxes = list[tuple[tuple[float, float, float, float], str, dict[str, str]]]


def result_boxes(results: Sequence[dict[str, Any]], where: str, report: ImportReport) -> tuple[RawBoxes, set[tuple[int, int]]]:
    """Pixel boxes of the rectangle results of one annotation (other result types are ignored), and the image
    sizes Label Studio reported with them."""
    raw: RawBoxes = []
    sizes: set[tuple[int, int]] = set()
    for r in results:
        if r.get("type") != "rectanglelabels":
            continue
        v = r.get("value", {})
        w, h = r.get("original_width"), r.get("original_height")
        labels = v.get("rectanglelabels") or []
        if not w or not h:
            report.problems.append(
                f"{where}: result {r.get('id')} has no original_width/original_height; export again from Label Studio"
            )
            continue
        if len(labels) != 1:
            report.problems.append(f"{where}: result {r.get('id')} has {len(labels)} labels {labels}; give each box exactly one")
            continue
        if float(v.get("rotation", 0) or 0) != 0:
            report.problems.append(f"{where}: result {r.get('id')} is rotated by {v['rotation']} degrees; draw boxes unrotated")
            continue
        sizes.add((int(w), int(h)))
        x1 = _px(float(v["x"]) * w / 100.0)
        y1 = _px(float(v["y"]) * h / 100.0)
        x2 = _px((float(v["x"]) + float(v["width"])) * w / 100.0)
        y2 = _px((float(v["y"]) + float(v["height"])) * h / 100.0)
        attrs = {str(k): str(a) for k, a in (r.get("sorter_attrs") or {}).items()}
        raw.append(((x1, y1, x2, y2), str(labels[0]), attrs))
    return raw, sizes


def read_export(
    tasks: Sequence[dict[str, Any]], batch: Batch, class_map: ClassMap, *, empty: Empty = "refuse", source: str = "export"
) -> tuple[dict[str, list[Box] | None], ImportReport]:
    """Labels per frame file from a Label Studio JSON export (the latest non-cancelled annotation of each task).

    Raises:
        LabelImportError: listing every problem (see :mod:`sorter.train.data.validate`), and tasks that are not
            frames of the batch.
    """
    report = ImportReport()
    frames = {f.file: f for f in batch.frames}
    names = []
    for t in tasks:
        for a in t.get("annotations") or []:
            if not a.get("was_cancelled"):
                names += [
                    str((r.get("value") or {}).get("rectanglelabels", ["?"])[0])
                    for r in a.get("result", [])
                    if r.get("type") == "rectanglelabels" and (r.get("value") or {}).get("rectanglelabels")
                ]
    class_map.check(names, source)
    files = [str((t.get("data") or {}).get("sorter_file", "")) for t in tasks]
    check_duplicates([f for f in files if f], "frame", report)
    out: dict[str, list[Box] | None] = {}
    for t, file in zip(tasks, files, strict=True):
        where = f"task {t.get('id')} ({file or 'no sorter_file'})"
        entry = frames.get(file)
        if entry is None:
            report.problems.append(f"{where} is not a frame of the batch '{batch.root}'; import into the batch that was pushed")
            continue
        done = [a for a in t.get("annotations") or [] if not a.get("was_cancelled")]
        if not done:  # nobody has labelled it yet: stays unlabelled
            report.skipped_empty += 1
            out[file] = None
            continue
        latest = max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), int(a.get("id") or 0)))
        raw, sizes = result_boxes(latest.get("result", []), where, report)
        wrong = sorted(sizes - {(entry.width_px, entry.height_px)})
        if wrong:
            report.problems.append(
                f"{where}: Label Studio saw a {wrong[0][0]}x{wrong[0][1]} image but the frame is "
                f"{entry.width_px}x{entry.height_px}; push the batch's own images"
            )
            continue
        if not raw:
            out[file] = [] if empty_frame(file, empty, report) else None
            continue
        boxes = map_boxes(raw, entry.width_px, entry.height_px, class_map, where, report)
        report.images += 1
        report.boxes += len(boxes)
        out[file] = boxes
    return out, report


def load_export(path: Path) -> list[dict[str, Any]]:
    """Read a Label Studio JSON export (a list of tasks)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Label Studio export '{path}' does not exist; export the project as JSON") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"Label Studio export '{path}' is not valid JSON ({e}); export it again") from None
    if not isinstance(doc, list):
        raise ConfigError(f"Label Studio export '{path}' is not a list of tasks; export as 'JSON', not 'JSON-MIN' or COCO")
    return doc
