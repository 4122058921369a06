"""Real photos (garbage_seg_481, a tiny subset) through import with a class map, a dataset, a seeded fine-tune with run
tracking, per-class evaluation with intervals, and the model registry's gate, promotion and rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from sorter.cli import main as cli_main  # noqa: E402
from sorter.train.data.batch import read_batch  # noqa: E402
from sorter.train.data.manifest import read_manifest  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SET = ROOT.parent / "shared" / "data" / "real_waste" / "garbage_seg_481"
MAP = "cardboard->cardboard,paper->paper,metal->alu_can,plastic->pet_bottle,glass->-,biological->-"
DEFAULT = ROOT / "sorter" / "models" / "default.onnx"

pytestmark = [
    pytest.mark.skipif(not SET.exists(), reason="the shared real_waste photos are not present"),
    pytest.mark.timeout(1800),
]


def _subset(split: str, n: int, out: Path) -> Path:
    """``n`` labelled images of a split, taken in turn from each class (keeps CI small)."""
    doc = json.loads((SET / f"instances_{split}.json").read_text())
    by_cat: dict[int, list[int]] = {}
    for a in sorted(doc["annotations"], key=lambda a: a["image_id"]):
        ids = by_cat.setdefault(a["category_id"], [])
        if a["image_id"] not in ids:
            ids.append(a["image_id"])
    labelled: list[int] = []
    while len(labelled) < n and any(by_cat.values()):
        for ids in by_cat.values():
            while ids and ids[0] in labelled:
                ids.pop(0)
            if ids and len(labelled) < n:
                labelled.append(ids.pop(0))
    doc["images"] = [im for im in doc["images"] if im["id"] in labelled]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in labelled]
    out.write_text(json.dumps(doc))
    return out


def _train(out: Path, ds: Path, extra: list[str]) -> int:
    return cli_main(
        [
            "train",
            "--init",
            str(DEFAULT),
            "--dataset",
            str(ds),
            "--out",
            str(out),
            "--train-images",
            "4",
            "--real-share",
            "0.5",
            "--val-images",
            "4",
            "--heldout-images",
            "6",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--warmup-steps",
            "2",
            "--threads",
            "2",
            "--no-progress",
            "--cache-dir",
            str(out.parent / "cache"),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = tmp_path_factory.mktemp("waste")
    train, valid = _subset("train", 14, w / "train.json"), _subset("valid", 10, w / "valid.json")
    # unknown classes are refused with the list, mapped or ignored on request
    assert cli_main(["labels", "from-coco", str(train), "--images", str(SET), "--out", str(w / "refused")]) == 2
    assert (
        cli_main(["labels", "from-coco", str(train), "--images", str(SET), "--out", str(w / "ignored"), "--unknown", "ignore"])
        == 0
    )
    assert {b.label for f in read_batch(w / "ignored").frames for b in f.labels or ()} <= {"cardboard", "paper"}
    for name, coco in (("gtrain", train), ("gvalid", valid)):
        assert (
            cli_main(
                [
                    "labels",
                    "from-coco",
                    str(coco),
                    "--images",
                    str(SET),
                    "--out",
                    str(w / name),
                    "--class-map",
                    MAP,
                    "--empty",
                    "negative",
                    "--recording",
                    name,
                ]
            )
            == 0
        )
    assert (
        cli_main(
            [
                "dataset",
                "build",
                str(w / "ds"),
                "--batch",
                str(w / "gtrain"),
                "--eval-batch",
                str(w / "gvalid"),
                "--split",
                "recording",
                "--test-recording",
                "gvalid",
            ]
        )
        == 0
    )
    return w


def test_class_map_and_recording_split(work: Path) -> None:
    labels = {b.label for f in read_batch(work / "gtrain").frames for b in f.labels or ()}
    assert labels <= {"cardboard", "paper", "alu_can", "pet_bottle"} and "alu_can" in labels
    m = read_manifest(work / "ds")
    assert m["counts"]["train"] == 14 and m["counts"]["test"] == 10
    assert {it["recording"] for it in m["items"] if it["split"] == "test"} == {"gvalid"}


def test_seeded_fine_tune_is_reproducible_and_tracked(work: Path) -> None:
    mlruns = (work / "mlruns").as_uri()
    args = ["--seed", "3", "--tracking", "auto", "--tracking-uri", mlruns]
    assert _train(work / "run1", work / "ds", args) == 0
    assert _train(work / "run2", work / "ds", args) == 0
    a = torch.load(work / "run1" / "checkpoint.pt", weights_only=False)["ema"]
    b = torch.load(work / "run2" / "checkpoint.pt", weights_only=False)["ema"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    metrics = json.loads((work / "run1" / "metrics.json").read_text())
    h = read_manifest(work / "ds")["hash"]
    assert metrics["data"]["dataset_hash"] == h and metrics["data"]["real_images"] == 14
    plant = metrics["plant_test"]
    assert plant["num_images"] == 10 and len(plant["per_class"]["alu_can"]["ap50"]["ci95"] or [0, 0]) == 2
    run = json.loads((work / "run1" / "run.json").read_text())
    assert run["tags"]["sorter.dataset_hash"] == h and run["metrics"][0]["step"] == 1 and run["status"] == "FINISHED"
    assert "metrics.json" in " ".join(run["artifacts"])
    mlflow = pytest.importorskip("mlflow")
    client = mlflow.tracking.MlflowClient(tracking_uri=mlruns)
    exp = client.get_experiment_by_name("sorter-detector")
    found = client.search_runs([exp.experiment_id])
    assert len(found) == 2 and all(r.data.tags["sorter.dataset_hash"] == h for r in found)
    assert all("train_loss" in r.data.metrics and "heldout_map50" in r.data.metrics for r in found)


def test_registry_gate_promotion_and_rollback(work: Path) -> None:
    assert _train(work / "bad", work / "ds", ["--seed", "3", "--lr", "0.02", "--tracking", "json"]) == 0
    reg = ["model", "--registry", str(work / "registry")]
    assert cli_main([*reg, "register", str(ROOT / "sorter" / "models"), "--base", "default", "--name", "shipped"]) == 0
    assert cli_main([*reg, "register", str(work / "run1"), "--name", "tuned"]) == 0
    assert cli_main([*reg, "register", str(work / "bad"), "--name", "bad"]) == 0
    assert cli_main([*reg, "promote", "shipped", "--rendered-images", "0"]) == 0  # first model: nothing to compare
    gate = [*reg, "promote", "bad", "--dataset", str(work / "ds"), "--rendered-images", "6", "--resamples", "200"]
    assert cli_main(gate) == 1  # refused: the destroyed model loses the rendered held-out set
    current = json.loads((work / "registry" / "registry.json").read_text())
    assert current["entries"][current["current"]]["name"] == "shipped"
    bad = next(e for e in current["entries"].values() if e["name"] == "bad")
    assert (
        bad["evaluations"][-1]["gate"]["passed"] is False and "rendered held-out" in bad["evaluations"][-1]["gate"]["reasons"][-1]
    )
    assert cli_main([*reg, "promote", "bad", "--rendered-images", "0", "--force"]) == 0
    assert (work / "registry" / "current" / "ID").read_text().strip() == bad["id"]
    assert cli_main([*reg, "rollback"]) == 0
    after = json.loads((work / "registry" / "registry.json").read_text())
    assert after["entries"][after["current"]]["name"] == "shipped"
    assert [h["action"] for h in after["history"]] == ["promote", "promote", "rollback"]
    assert cli_main([*reg, "show", "tuned"]) == 0 and cli_main([*reg, "list"]) == 0
    # a replay A/B on recorded footage of the (simulated) line: the tuned model runs it like the current one
    rec = work / "rec"
    assert cli_main(["record", str(rec), "--fast", "--duration", "1", "--quiet"]) == 0
    assert cli_main([*reg, "promote", "tuned", "--rendered-images", "0", "--replay", str(rec)]) == 0
    entries = json.loads((work / "registry" / "registry.json").read_text())["entries"].values()
    tuned = next(e for e in entries if e["name"] == "tuned")
    replay = tuned["evaluations"][-1]["gate"]["checks"][-1]
    assert replay["check"] == "replay A/B" and replay["frames"][0] == replay["frames"][1] > 0
