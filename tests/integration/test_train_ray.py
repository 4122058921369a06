"""`sorter train --address`: data-parallel training on Ray Train workers (DDP, gloo) on a small toy job.

One worker gives one process's losses; two workers on a local Ray and on a Ray head on loopback train a model that
loads and learns, with the run tracked in MLflow and marked with its number of workers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray  # the ray extra, which the test install has

from sorter.cli import main as cli_main
from sorter.detect.onnxruntime_backend import OrtEngine
from sorter.detect.preprocess import to_tensor
from sorter.entities import MATERIAL_CLASSES
from sorter.sweep.cluster import connect
from sorter.train.coco import write_coco
from sorter.train.toy import ToyShapes

SMALL = ["--input-size", "128x96", "--width", "4", "--top-k", "20", "--batch-size", "8", "--threads", "1", "--no-progress",
         "--train-images", "0", "--val-images", "0", "--heldout-images", "0", "--warmup-steps", "4", "--lr", "4e-3"]


@pytest.fixture(scope="module")
def toy_coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 drawn-shape images as COCO annotations (6 batches of 8)."""
    d = tmp_path_factory.mktemp("toy")
    toy = ToyShapes(48, size=(128, 72), seed=5)
    return write_coco((toy[i] for i in range(len(toy))), d / "coco", MATERIAL_CLASSES)


@pytest.fixture(scope="class")
def local_ray(ray_token: str) -> Iterator[None]:
    """One local Ray instance with 2 CPUs for the tests of a class (the commands join it rather than start their own)."""
    started = connect("local", 2)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _train(out: Path, coco: Path, epochs: int, *extra: str) -> int:
    return cli_main(["train", "--out", str(out), "--coco", str(coco), "--epochs", str(epochs), "--cache-dir",
                     str(out.parent / "cache"), "--tracking", "mlflow", "--tracking-uri", (out.parent / "mlruns").as_uri(),
                     *SMALL, *extra])


def _history(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _check_trained(out: Path, mlruns: Path, workers: int) -> None:
    hist = _history(out)
    assert [r["epoch"] for r in hist] == list(range(1, len(hist) + 1))
    losses = [r["train_loss"] for r in hist]
    assert all(b < a for a, b in pairwise(losses)) and losses[-1] < 0.95 * losses[0], losses
    engine = OrtEngine(out / "model.onnx")  # the exported model loads and detects
    try:
        boxes, scores, _classes = engine.infer(to_tensor(ToyShapes(1, size=(128, 96), seed=9)[0].image))
    finally:
        engine.close()
    assert boxes.shape == (1, 20, 4) and np.isfinite(scores).all()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "FINISHED" and run["tags"]["sorter.train_workers"] == str(workers)
    assert [m["step"] for m in run["metrics"] if "train_loss" in m] == [r["epoch"] for r in hist]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlruns.as_uri())
    exp = client.get_experiment_by_name("sorter-detector")
    assert exp is not None
    (found,) = client.search_runs([exp.experiment_id], f"tags.`sorter.train_workers` = '{workers}'")
    assert found.data.params["ray.workers"] == str(workers)
    tracked = [m.value for m in client.get_metric_history(found.info.run_id, "train_loss")]
    assert tracked == pytest.approx(losses)


@pytest.mark.usefixtures("local_ray")
class TestOnALocalRay:
    """One worker against one process, then two workers, on one local Ray instance."""

    def test_one_worker_gives_the_single_process_losses(self, tmp_path: Path, toy_coco: Path) -> None:
        assert _train(tmp_path / "one", toy_coco, 2) == 0
        assert _train(tmp_path / "ray1", toy_coco, 2, "--address", "local", "--workers", "1") == 0
        one, ray1 = _history(tmp_path / "one"), _history(tmp_path / "ray1")
        assert [r["step"] for r in ray1] == [r["step"] for r in one] == [6, 12]
        for a, b in zip(one, ray1, strict=True):
            for key in ("train_loss", "train_heat", "train_box", "lr"):
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key
        metrics = json.loads((tmp_path / "ray1" / "metrics.json").read_text())
        assert metrics["ray"] == {"address": "local", "workers": 1, "cpus_per_worker": 1, "threads_per_worker": 1}

    def test_two_workers_on_a_local_ray_train_a_model_that_learns(self, tmp_path: Path, toy_coco: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "ray2"
        assert _train(out, toy_coco, 3, "--address", "local", "--workers", "2") == 0
        assert "trained on Ray (local) with 2 workers" in capsys.readouterr().out
        _check_trained(out, tmp_path / "mlruns", 2)
        assert (out / "checkpoint.pt").exists() and (out / "model.int8.onnx").exists()
        reg = ["model", "--registry", str(tmp_path / "registry")]  # the registry and its gate take it as any run
        assert cli_main([*reg, "register", str(out), "--name", "ray2"]) == 0
        model_id = hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()[:12]
        assert cli_main([*reg, "promote", model_id, "--rendered-images", "0"]) == 0
        assert (tmp_path / "registry" / "current" / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()


def test_two_workers_on_a_ray_head_on_loopback(tmp_path: Path, toy_coco: Path, ray_head: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert not ray.is_initialized()
    out = tmp_path / "head"
    assert _train(out, toy_coco, 3, "--address", ray_head, "--workers", "2") == 0
    assert not ray.is_initialized()  # the command left the cluster it joined
    _check_trained(out, tmp_path / "mlruns", 2)
    capsys.readouterr()
    assert _train(tmp_path / "wide", toy_coco, 1, "--address", ray_head, "--workers", "4") == 2  # the head has 2 CPUs
    assert f"the Ray cluster at '{ray_head}' has 2 CPUs; 4 workers of 1 CPU need 4" in capsys.readouterr().err
    assert not ray.is_initialized()


def test_bad_ray_options_are_refused(tmp_path: Path, toy_coco: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path / "a", toy_coco, 1, "--workers", "2") == 2
    assert "add --address local" in capsys.readouterr().err
    assert _train(tmp_path / "b", toy_coco, 1, "--address", "local", "--workers", "0") == 2
    assert "--workers 0" in capsys.readouterr().err
    assert _train(tmp_path / "c", toy_coco, 1, "--address", "local", "--workers", "3") == 2
    assert "--batch-size 8 does not split between 3 workers" in capsys.readouterr().err
    assert not ray.is_initialized()
