"""``collect.dir``: the running line keeps frames worth labelling, with pre-annotations, without changing what it sorts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from sorter.cli import main as cli_main


def test_the_running_line_collects_frames_with_their_predictions(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    collect = tmp_path / "collect"
    args = ["run", "--fast", "--duration", "2", "--quiet", "--summary", str(out), "--set", "detector.type=onnxruntime",
            "--set", f"collect.dir={collect}", "--set", "collect.random_share=1.0", "--set", "collect.min_gap_ms=0"]
    assert cli_main(args) == 0
    run = json.loads(out.read_text())
    [batch_dir] = list(collect.iterdir())  # one batch folder per run, named after the line and the start time
    assert batch_dir.name.startswith("sim-airjet-")
    batch = json.loads((batch_dir / "batch.json").read_text())
    info = batch["info"]
    assert info["frames_offered"] == run["frames"] and info["cycles_dropped"] == 0  # every cycle was offered
    assert info["threshold"] == 0.3 and info["band"] == 0.1 and info["detector"] == "onnxruntime"
    frames = batch["frames"]
    assert 1 <= len(frames) <= run["frames"]
    assert sum(info["reasons"].values()) >= len(frames)
    for f in frames:
        img = cv2.imread(str(batch_dir / f["file"]), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (f["height_px"], f["width_px"], 3) == (720, 1280, 3)
        assert f["reasons"] and f["labels"] is None  # chosen for a reason, not labelled yet
        for p in f["predictions"]:
            assert p["label"] in batch["class_names"] and p["score"] >= 0.2 - 1e-6  # down to min_score - band
            x0, y0, x1, y1 = p["box_px"]
            assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 720
    # the boxes under the threshold go to the collector only: the tracker saw boxes >= min_score
    assert all(p.get("track_id", 0) == 0 for f in frames for p in f["predictions"] if p["score"] < 0.3)
