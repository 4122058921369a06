"""Training end to end on small data: determinism, resume, COCO input, export of every variant, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sorter.cli import main as cli_main  # noqa: E402
from sorter.detect.golden import compare, load_golden  # noqa: E402
from sorter.detect.model_files import read_model_info  # noqa: E402
from sorter.detect.onnxruntime_backend import OrtEngine  # noqa: E402
from sorter.detect.preprocess import to_tensor  # noqa: E402
from sorter.detect.spec import ModelSpec  # noqa: E402
from sorter.entities import MATERIAL_CLASSES  # noqa: E402
from sorter.train.coco import write_coco  # noqa: E402
from sorter.train.packed import pack  # noqa: E402
from sorter.train.toy import ToyShapes  # noqa: E402
from sorter.train.trainer import TrainConfig, Trainer  # noqa: E402

SPEC = ModelSpec(input_w_px=128, input_h_px=96, width=4, top_k=20)
SMALL = ["--input-size", "128x96", "--width", "4", "--top-k", "20", "--batch-size", "8", "--threads", "2", "--no-progress"]


def _cfg(epochs: int) -> TrainConfig:
    return TrainConfig(seed=11, epochs=epochs, batch_size=8, warmup_steps=4, val_every=1, threads=2)


def test_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    data = pack(ToyShapes(32, size=(128, 72), seed=1), SPEC, MATERIAL_CLASSES)
    straight = Trainer(tmp_path / "a", SPEC, _cfg(2))
    straight.fit(data, progress=False)
    first = Trainer(tmp_path / "b", SPEC, _cfg(1))
    first.fit(data, progress=False)
    resumed = Trainer(tmp_path / "b", SPEC, _cfg(2))
    assert resumed.resume() and resumed.epoch == 1
    resumed.fit(data, progress=False)
    for (k, a), b in zip(straight.ema.state_dict().items(), resumed.ema.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{k} differs after resume")
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_training_reduces_the_loss_and_learns_the_toy_task(tmp_path: Path) -> None:
    train = pack(ToyShapes(96, size=(128, 72), seed=2), SPEC, MATERIAL_CLASSES)
    val = pack(ToyShapes(24, size=(128, 72), seed=3), SPEC, MATERIAL_CLASSES)
    t = Trainer(tmp_path, SPEC, TrainConfig(seed=0, epochs=8, batch_size=8, warmup_steps=10, val_every=8, threads=2, lr=4e-3))
    hist = t.fit(train, val, progress=False)
    assert hist[-1]["train_loss"] < 0.6 * hist[0]["train_loss"]
    assert hist[-1]["val_map50"] > 0.15  # far above chance after a few seconds on CPU


def test_cli_trains_on_coco_only_and_exports_every_variant(tmp_path: Path) -> None:
    toy = ToyShapes(24, size=(128, 72), seed=4)
    ann = write_coco((toy[i] for i in range(len(toy))), tmp_path / "coco", MATERIAL_CLASSES)
    out = tmp_path / "run"
    rc = cli_main(
        [
            "train",
            "--out",
            str(out),
            "--coco",
            str(ann),
            "--train-images",
            "0",
            "--val-images",
            "8",
            "--heldout-images",
            "4",
            "--epochs",
            "1",
            "--cache-dir",
            str(tmp_path / "cache"),
            *SMALL,
        ]
    )
    assert rc == 0
    for name in (
        "checkpoint.pt",
        "metrics.jsonl",
        "metrics.json",
        "model.onnx",
        "model.fp16.onnx",
        "model.int8.onnx",
        "model.golden.json",
    ):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["map50"] <= 1.0 and 0.0 <= metrics["map"] <= metrics["map50"]
    assert set(metrics["heldout"]) == {"fp32", "fp16", "int8"}
    assert metrics["data"]["coco"][0][0] == str(ann)
    assert metrics["data"]["train_images_total"] == 24
    golden = load_golden(out / "model.golden.json")
    for precision in ("fp32", "fp16", "int8"):
        path = out / ("model.onnx" if precision == "fp32" else f"model.{precision}.onnx")
        info = read_model_info(path)
        assert info.precision == precision and info.spec == SPEC
        assert info.metadata["sorter.seed"] == "0"
        got = OrtEngine(path).infer(to_tensor(golden.canvas))
        assert compare(golden.outputs[precision], got, precision) == []

    # a second run into the same folder must not silently overwrite it
    assert cli_main(["train", "--out", str(out), "--coco", str(ann), "--train-images", "0", "--epochs", "1", *SMALL]) == 2

    # export-only re-exports the checkpoint; fine-tuning starts from the exported ONNX
    assert (
        cli_main(
            [
                "train",
                "--out",
                str(out),
                "--export-only",
                "--val-images",
                "8",
                "--heldout-images",
                "0",
                "--cache-dir",
                str(tmp_path / "cache"),
                *SMALL,
            ]
        )
        == 0
    )
    rc = cli_main(
        [
            "train",
            "--out",
            str(tmp_path / "ft"),
            "--init",
            str(out / "model.onnx"),
            "--coco",
            str(ann),
            "--train-images",
            "0",
            "--val-images",
            "8",
            "--heldout-images",
            "0",
            "--epochs",
            "1",
            "--lr",
            "5e-4",
            "--edge-loss-weight",
            "2",
            "--cache-dir",
            str(tmp_path / "cache"),
            *SMALL,
        ]
    )
    assert rc == 0
    row = json.loads((tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()[0])
    assert np.isfinite(row["train_loss"]) and row["train_edge"] > 0.0
    # the edge term is in the loss with its weight: loss = heat + 5 GIoU + 2 edge, step by step and so on average
    assert row["train_loss"] == pytest.approx(row["train_heat"] + 5.0 * row["train_box"] + 2.0 * row["train_edge"], rel=1e-4)

    # a fine-tuned run (trained in the ONNX file's folded layout) is itself a starting point: --init its checkpoint
    common = ["--coco", str(ann), "--train-images", "0", "--val-images", "0", "--heldout-images", "0", "--epochs", "1"]
    rc = cli_main(["train", "--out", str(tmp_path / "ft2"), "--init", str(tmp_path / "ft" / "checkpoint.pt"), *common,
                   "--cache-dir", str(tmp_path / "cache"), *SMALL])
    assert rc == 0
    assert np.isfinite(json.loads((tmp_path / "ft2" / "metrics.jsonl").read_text().splitlines()[0])["train_loss"])


def test_a_negative_edge_loss_weight_is_refused_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["train", "--edge-loss-weight", "-1", "--out", "unused"]) == 2
    assert "--edge-loss-weight -1: use 0 (GIoU alone) or a positive weight" in capsys.readouterr().err


def test_a_look_real_share_outside_a_mixed_look_or_out_of_range_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["train", "--look-real-share", "0.3", "--out", "unused"]) == 2
    assert "--look-real-share 0.3 applies to --look mixed only (this run: --look sim)" in capsys.readouterr().err
    assert cli_main(["train", "--look", "mixed", "--look-real-share", "1.5", "--out", "unused"]) == 2
    assert "--look-real-share 1.5: give a share from 0 to 1" in capsys.readouterr().err
