"""`sorter eval-detector --address`: the held-out set sharded over Ray workers gives the single-process mAP exactly."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from sorter.train.sharded import shard_ranges


def test_shards_cover_the_set_on_scene_boundaries() -> None:
    assert shard_ranges(16, 3, align=4) == [range(0, 4), range(4, 8), range(8, 16)]
    assert shard_ranges(10, 2, align=4) == [range(0, 4), range(4, 10)]
    assert shard_ranges(3, 8, align=4) == [range(0, 3)]
    assert shard_ranges(7, 3) == [range(0, 2), range(2, 4), range(4, 7)]


def _eval(tmp_path: Path, name: str, *extra: str) -> dict[str, object]:
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # not the user's token
    cmd = [sys.executable, "-m", "sorter.cli", "eval-detector", "--heldout-images", "16", "--summary", str(out), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(out.read_text()))


def test_sharded_evaluation_gives_the_single_process_map(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    pytest.importorskip("pycocotools", reason="COCO mAP needs pycocotools (the train or dev extra)")
    one = _eval(tmp_path, "one")
    sharded = _eval(tmp_path, "sharded", "--address", "local", "--num-cpus", "2", "--shards", "3")
    assert sharded.pop("ray") == {"address": "local", "shards": 3}
    assert one["num_images"] == 16 and isinstance(one["num_detections"], int) and one["num_detections"] > 0
    assert sharded == one  # mAP, per class, per size, confusion matrix, counts: identical
