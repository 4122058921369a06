"""Class maps, COCO and Label Studio exchange: exact round trips and clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sorter.entities import MATERIAL_CLASSES
from sorter.errors import ConfigError
from sorter.train.data import coco_io, labelstudio
from sorter.train.data.batch import Batch, Box, FrameEntry, read_batch, write_batch
from sorter.train.data.classmap import ClassMap, load_class_map, parse_pairs
from sorter.train.data.validate import LabelImportError


def _batch(tmp: Path, n: int = 4, labelled: bool = False) -> Batch:
    (tmp / "images").mkdir(parents=True)
    frames = []
    rng = np.random.default_rng(0)
    for i in range(n):
        name = f"images/f{i:06d}.png"
        cv2.imwrite(str(tmp / name), rng.integers(0, 255, (112, 290, 3), dtype=np.uint8))
        preds = (Box((10.0 + i, 20.0, 60.0 + i, 50.0), "paper", 0.55, 3), Box((100.0, 5.0, 140.0, 40.0), "film", 0.2, 4))
        labels = (Box((11.0, 21.0, 61.0, 49.0), "cardboard"), Box((200.0, 60.0, 289.0, 112.0), "film")) if labelled else None
        frames.append(FrameEntry(name, 290, 112, "video.mp4", "rec", i, i * 33_000_000, 0.0, ("near_threshold",), preds, labels))
    b = Batch(tmp, MATERIAL_CLASSES, tuple(frames))
    write_batch(b)
    return read_batch(tmp)


def test_class_map_parsing_mapping_and_refusal(tmp_path: Path) -> None:
    assert parse_pairs(["metal->alu_can, glass -> -", "paper=paper"]) == {"metal": "alu_can", "glass": "-", "paper": "paper"}
    m = ClassMap(MATERIAL_CLASSES, {"metal": "alu_can", "glass": "-"})
    assert (m.lookup("metal"), m.lookup("glass"), m.lookup("film"), m.lookup("wood")) == ("alu_can", None, "film", None)
    with pytest.raises(ConfigError, match=r"unknown classes 'wood' \(2x\).*--class-map"):
        m.check(["wood", "metal", "wood"], "f.json")
    assert ClassMap(MATERIAL_CLASSES, {}, "ignore").check(["wood"], "f.json") == {"wood": 1}
    with pytest.raises(ConfigError, match="not classes of the model"):
        ClassMap(MATERIAL_CLASSES, {"metal": "steel"})
    f = tmp_path / "map.txt"
    f.write_text("# plant names\nmetal -> alu_can\nbio -> -\n")
    assert load_class_map([str(f)], MATERIAL_CLASSES).pairs == {"metal": "alu_can", "bio": "-"}


def test_coco_export_is_cvat_layout_and_round_trips_exactly(tmp_path: Path) -> None:
    b = _batch(tmp_path / "b", labelled=True)
    path = coco_io.export_coco(b, tmp_path / "cvat")
    assert path == tmp_path / "cvat" / "annotations" / "instances_default.json"
    assert sorted(p.name for p in (tmp_path / "cvat" / "images").iterdir()) == [f"f{i:06d}.png" for i in range(4)]
    labels, report = coco_io.read_coco(path, ClassMap(MATERIAL_CLASSES))
    assert report.problems == [] and report.boxes == 8
    merged = coco_io.merge_labels(
        b.with_frames([FrameEntry(**{**f.__dict__, "labels": None}) for f in b.frames]), labels, report, "x"
    )
    assert [f.labels for f in merged.frames] == [f.labels for f in b.frames]
    # unlabelled frames export their predictions (>= min score) as pre-annotations with scores
    unl = _batch(tmp_path / "u")
    doc = json.loads(coco_io.export_coco(unl, tmp_path / "cvat2", min_score=0.3).read_text())
    assert len(doc["annotations"]) == 4 and all(a["score"] == 0.55 for a in doc["annotations"])


def _coco(tmp: Path, images: list[Any], anns: list[dict[str, Any]], cats: list[str]) -> Path:
    p = tmp / "ann.json"
    p.write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": k + 1, "name": n} for k, n in enumerate(cats)]})
    )
    return p


def test_coco_import_lists_every_problem_with_its_fix(tmp_path: Path) -> None:
    images = [
        {"id": 1, "file_name": "a.png", "width": 100, "height": 50},
        {"id": 2, "file_name": "a.png", "width": 100, "height": 50},
        {"id": 3, "file_name": "c.png", "width": 100, "height": 50},
    ]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [90, 10, 30, 10]},  # outside on the right
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 10]},  # no area
        {"id": 3, "image_id": 9, "category_id": 1, "bbox": [1, 1, 5, 5]},
    ]  # missing image
    p = _coco(tmp_path, images, anns, ["paper"])
    with pytest.raises(LabelImportError) as e:
        _, r = coco_io.read_coco(p, ClassMap(MATERIAL_CLASSES))
        r.raise_if_problems(str(p))
    text = "\n".join(e.value.problems)
    assert "image file 'a.png' appears 2 times" in text
    assert "lies outside the 100x50 image" in text and "has no area" in text
    assert "refers to image id 9" in text
    assert "image 'c.png' has no labels" in text and "--empty negative" in text
    ok = _coco(tmp_path, [images[2]], [], ["paper"])
    labels, r = coco_io.read_coco(ok, ClassMap(MATERIAL_CLASSES), empty="negative")
    assert labels == {"c.png": []} and r.negatives == 1
    unk = _coco(tmp_path, [images[0]], [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}], ["metal"])
    with pytest.raises(ConfigError, match="unknown classes 'metal'"):
        coco_io.read_coco(unk, ClassMap(MATERIAL_CLASSES))
    labels, _ = coco_io.read_coco(unk, ClassMap(MATERIAL_CLASSES, {"metal": "alu_can"}))
    assert labels["a.png"] == [Box((1.0, 1.0, 6.0, 6.0), "alu_can")]


@pytest.mark.parametrize(
    ("images", "anns", "match"),
    [
        ([{"id": 1, "file_name": "a.png"}], [], r"images\[0\] \(id 1\) field 'width' is missing"),
        ([{"id": 1, "file_name": "a.png", "width": "640", "height": 480}], [], r"field 'width' is '640', not int"),
        ([{"id": 1, "file_name": "a.png", "width": 64, "height": 48}], [{"id": 7, "image_id": 1, "category_id": 1}],
         r"annotations\[0\] \(id 7\) field 'bbox' is missing"),
        ([{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
         [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}], r"bbox \[1, 2, 3\] is not \[x, y, width, height\]"),
        (["a.png"], [], r"images\[0\] is not an object"),
    ],
)
def test_coco_import_names_a_missing_or_wrong_field(
    tmp_path: Path, images: list[Any], anns: list[dict[str, Any]], match: str
) -> None:
    p = _coco(tmp_path, images, anns, ["paper"])
    with pytest.raises(ConfigError, match=match):
        coco_io.read_coco(p, ClassMap(MATERIAL_CLASSES))


def test_label_studio_tasks_use_percent_and_come_back_to_the_pixel(tmp_path: Path) -> None:
    b = _batch(tmp_path / "b", labelled=True)
    tasks = labelstudio.to_tasks(b, url_prefix="http://files", min_score=0.3)
    t0 = tasks[0]
    assert t0["data"]["image"] == "http://files/images/f000000.png" and t0["data"]["sorter_file"] == "images/f000000.png"
    pred = t0["predictions"][0]["result"]
    assert len(pred) == 1 and pred[0]["score"] == 0.55
    v = pred[0]["value"]
    assert v["x"] == pytest.approx(100 * 10 / 290) and v["width"] == pytest.approx(100 * 50 / 290)
    assert v["y"] == pytest.approx(100 * 20 / 112) and v["rectanglelabels"] == ["paper"]
    # what Label Studio exports: the tasks with their annotations (as JSON text and back)
    exported = json.loads(json.dumps([{**t, "id": k + 1} for k, t in enumerate(tasks)]))
    labels, report = labelstudio.read_export(exported, b, ClassMap(MATERIAL_CLASSES))
    assert report.problems == []
    for f in b.frames:
        assert labels[f.file] == list(f.labels or ())


def test_label_studio_import_refuses_foreign_tasks_rotations_and_size_mismatch(tmp_path: Path) -> None:
    b = _batch(tmp_path / "b", labelled=True)
    tasks = labelstudio.to_tasks(b)
    tasks[0]["data"]["sorter_file"] = "images/nope.png"
    tasks[1]["annotations"][0]["result"][0]["value"]["rotation"] = 30
    tasks[2]["annotations"][0]["result"][0]["original_width"] = 580
    tasks[3]["annotations"] = []
    _, report = labelstudio.read_export(tasks, b, ClassMap(MATERIAL_CLASSES))
    text = "\n".join(report.problems)
    assert "is not a frame of the batch" in text and "rotated by 30" in text
    assert "saw a 580x112 image" in text
    labels, report = labelstudio.read_export(tasks[3:], b, ClassMap(MATERIAL_CLASSES))
    assert labels == {"images/f000003.png": None} and report.skipped_empty == 1  # not labelled yet: not an error
    tasks[3]["annotations"] = [{"result": []}]
    _, report = labelstudio.read_export(tasks[3:], b, ClassMap(MATERIAL_CLASSES))
    assert "has no labels" in report.problems[0]  # submitted without boxes: bare belt only when told so
