"""Splits keep an object's frames on one side; manifests have a content identity; balance reports warn."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sorter.entities import MATERIAL_CLASSES
from sorter.errors import ConfigError
from sorter.train.data.balance import balance_report
from sorter.train.data.batch import Batch, Box, FrameEntry, write_batch
from sorter.train.data.manifest import MANIFEST, build_dataset, read_manifest, verify
from sorter.train.data.splits import SplitConfig, split_frames

S = 1_000_000_000


def test_time_split_puts_one_block_in_test_and_guards_its_edges() -> None:
    t = [int(k * S / 10) for k in range(200)]  # 20 s at 10 fps
    out = split_frames(["r"] * 200, t, SplitConfig("time", test_fraction=0.25, test_at=0.5, guard_s=1.0))
    test = [k for k, s in enumerate(out) if s == "test"]
    assert test == list(range(test[0], test[-1] + 1))  # contiguous
    assert abs(len(test) - 50) <= 2
    guard = [k for k, s in enumerate(out) if s == "guard"]
    assert len(guard) == 20 and all(min(abs(g - test[0]), abs(g - test[-1])) <= 10 for g in guard)
    # an object visible for under guard_s never has frames in both train and test
    for start in range(0, 190):
        seen = {out[k] for k in range(start, start + 10)}
        assert not {"train", "test"} <= seen
    end = split_frames(["r"] * 200, t, SplitConfig("time", test_fraction=0.25, test_at=1.0, guard_s=0.0))
    assert end[-1] == "test" and end[0] == "train"


def test_recording_split_keeps_recordings_whole() -> None:
    recs = [f"r{k // 20}" for k in range(200)]
    out = split_frames(recs, list(range(200)), SplitConfig("recording", test_fraction=0.3, seed=1))
    by_rec: dict[str, set[str]] = {}
    for r, s in zip(recs, out, strict=True):
        by_rec.setdefault(r, set()).add(s)
    assert all(len(v) == 1 for v in by_rec.values())
    assert 0.25 <= out.count("test") / 200 <= 0.45


def _labelled_batch(root: Path, n: int, recording: str, seed: int) -> Batch:
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        name = f"images/f{i:06d}.png"
        cv2.imwrite(str(root / name), rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
        labels = () if i % 4 == 0 else (Box((5.0, 5.0, 40.0, 30.0), MATERIAL_CLASSES[i % 3], attrs={"state": "flat"}),)
        frames.append(FrameEntry(name, 80, 60, "cam", recording, i, i * S, 0.0, (), (), labels, {"light": "normal"}))
    frames.append(FrameEntry("images/f000000.png", 80, 60, "cam", recording, 999, 0, 0.0, (), (), None))  # unlabelled
    b = Batch(root, MATERIAL_CLASSES, tuple(frames))
    write_batch(b)
    return b


def test_manifest_hash_identity_and_tampering(tmp_path: Path) -> None:
    b = _labelled_batch(tmp_path / "b", 20, "rec1", 0)
    cfg = SplitConfig("time", test_fraction=0.25, guard_s=0.0)
    m1 = build_dataset(tmp_path / "d1", [b], cfg)
    m2 = build_dataset(tmp_path / "d2", [b], cfg)
    assert m1["hash"] == m2["hash"] and len(m1["hash"]) == 64
    assert m1["counts"] == {"train": 15, "val": 0, "test": 5}
    assert len(list((tmp_path / "d1" / "images").iterdir())) == 20
    coco = json.loads((tmp_path / "d1" / "train.json").read_text())
    assert len(coco["images"]) == 15 and coco["annotations"][0]["attributes"] == {"state": "flat"}
    assert verify(tmp_path / "d1") == []
    other = build_dataset(tmp_path / "d3", [b], SplitConfig("time", test_fraction=0.5, guard_s=0.0))
    assert other["hash"] != m1["hash"]
    img = tmp_path / "d1" / read_manifest(tmp_path / "d1")["items"][0]["image"]
    cv2.imwrite(str(img), np.zeros((60, 80, 3), np.uint8))
    assert any("has changed" in p for p in verify(tmp_path / "d1"))
    doc = json.loads((tmp_path / "d2" / MANIFEST).read_text())
    k = next(i for i, it in enumerate(doc["items"]) if it["boxes"])
    doc["items"][k]["boxes"] = []
    (tmp_path / "d2" / MANIFEST).write_text(json.dumps(doc))
    assert any("edited by hand" in p for p in verify(tmp_path / "d2"))
    with pytest.raises(ConfigError, match="already holds a dataset"):
        build_dataset(tmp_path / "d1", [b], cfg)


def test_eval_only_batches_never_reach_train_and_duplicates_are_taken_once(tmp_path: Path) -> None:
    b = _labelled_batch(tmp_path / "b", 20, "rec1", 0)
    m = build_dataset(tmp_path / "d", [b], SplitConfig("time", test_fraction=0.25, guard_s=0.0), eval_batches=[b])
    assert m["counts"]["train"] == 15 and len(m["items"]) == 20
    e = build_dataset(tmp_path / "e", [], SplitConfig("time", test_fraction=0.25, guard_s=0.0), eval_batches=[b])
    assert e["counts"]["train"] == 0 and e["counts"]["test"] == 5


def test_balance_report_counts_and_warns() -> None:
    items = [
        {
            "split": "train",
            "width_px": 300,
            "height_px": 100,
            "tags": {"light": "dark"},
            "boxes": [{"box_px": [10, 10, 60, 60], "label": "paper", "attrs": {"state": "crumpled"}}],
        },
        {
            "split": "train",
            "width_px": 300,
            "height_px": 100,
            "tags": {"light": "dark"},
            "boxes": [
                {"box_px": [250, 10, 260, 20], "label": "paper"},
                {"box_px": [0, 0, 5, 5], "label": "film", "attrs": {"ignore": "1"}},
            ],
        },
        {
            "split": "test",
            "width_px": 300,
            "height_px": 100,
            "tags": {},
            "boxes": [{"box_px": [100, 0, 200, 100], "label": "film"}],
        },
    ]
    r = balance_report(items, MATERIAL_CLASSES)
    t = r["train"]
    assert t["per_class"]["paper"] == 2 and t["ignored_objects"] == 1
    assert t["per_size"]["paper"] == {"medium": 1, "small": 1} and t["per_region"]["paper"] == {"left": 1, "right": 1}
    assert t["per_state"]["paper"] == {"crumpled": 1} and t["image_tags"]["light"] == {"dark": 2}
    w = "\n".join(r["warnings"])
    assert "only 2 'paper' objects" in w and "'film' is in the test split but never in train" in w
    assert "'paper' has no test objects" in w and "no bare-belt frames" in w
