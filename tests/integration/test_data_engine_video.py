"""The data engine on the shared real conveyor video: collect, empty-belt capture, label import, dataset, honest evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sorter.cli import main as cli_main
from sorter.train.data.batch import read_batch
from sorter.train.data.manifest import read_manifest, verify

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT.parent / "shared" / "data" / "video" / "delta_robot_green_belt" / "conveyor_belt.mp4"
LABELS = ROOT / "tests" / "data" / "conveyor_belt_labels.json"
ROI = "78,214,290,112"

pytestmark = [
    pytest.mark.skipif(not VIDEO.exists(), reason="the shared conveyor video is not present"),
    pytest.mark.timeout(1200),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = tmp_path_factory.mktemp("engine")
    assert (
        cli_main(
            [
                "collect",
                str(w / "empty"),
                "--video",
                str(VIDEO),
                "--roi",
                ROI,
                "--empty-belt",
                "--yes",
                "--to-s",
                "1.5",
                "--every",
                "5",
            ]
        )
        == 0
    )
    assert (
        cli_main(
            [
                "collect",
                str(w / "al"),
                "--video",
                str(VIDEO),
                "--roi",
                ROI,
                "--min-gap-ms",
                "100",
                "--random-share",
                "0.05",
                "--to-s",
                "4.5",
            ]
        )
        == 0
    )
    assert cli_main(["collect", str(w / "all"), "--video", str(VIDEO), "--roi", ROI, "--keep-all", "--every", "4"]) == 0
    for b in ("al", "all"):
        assert cli_main(["labels", "import", str(w / b), "--coco", str(LABELS), "--partial", "--empty", "negative"]) == 0
    return w


def test_collection_saves_frames_metadata_and_pre_annotations(work: Path) -> None:
    empty = read_batch(work / "empty")
    assert [f.frame_index for f in empty.frames] == list(range(0, 46, 5))
    assert all(f.labels == () and f.reasons == ("empty_belt",) for f in empty.frames)
    al = read_batch(work / "al")
    assert 10 <= len(al.frames) <= 80 and max(f.frame_index for f in al.frames) <= 135
    reasons = {r for f in al.frames for r in f.reasons}
    assert {"near_threshold", "random"} <= reasons
    f = next(f for f in al.frames if f.predictions)
    assert f.t_capture_ns == round(f.frame_index * 1e9 / 30) and f.recording == "conveyor_belt" and f.source == str(VIDEO)
    assert (f.width_px, f.height_px) == (290, 112) and f.tags["light"] in ("dark", "normal", "bright")
    assert all(p.score is not None and p.score >= 0.2 for p in f.predictions) and al.info["tracks"] == "pixel linker"
    assert al.info["model_sha256"] and al.info["roi_px"] == [78, 214, 290, 112]
    labelled = [f for f in al.frames if f.labels]
    assert labelled and all(b.label in ("cardboard", "film") for f in labelled for b in f.labels or ())


def test_empty_belt_capture_needs_confirmation(work: Path) -> None:
    assert cli_main(["collect", str(work / "unconfirmed"), "--video", str(VIDEO), "--empty-belt", "--to-s", "0.2"]) == 2
    assert not (work / "unconfirmed" / "batch.json").exists()


def test_dataset_split_by_time_never_splits_an_object(work: Path) -> None:
    out = work / "ds"
    assert (
        cli_main(
            [
                "dataset",
                "build",
                str(out),
                "--batch",
                str(work / "al"),
                "--batch",
                str(work / "empty"),
                "--eval-batch",
                str(work / "all"),
                "--test-fraction",
                "0.25",
                "--test-at",
                "0.5",
                "--guard-s",
                "1.0",
            ]
        )
        == 0
    )
    m = read_manifest(out)
    objects = {
        s: {b["attrs"].get("object") for it in m["items"] if it["split"] == s for b in it["boxes"]} for s in ("train", "test")
    }
    assert objects["test"] == {"cardboard_b"} and not objects["train"] & objects["test"]
    assert all(not it["eval_only"] for it in m["items"] if it["split"] == "train")
    assert verify(out) == [] and json.loads((out / "report.json").read_text())["train"]["negative_images"] >= 10


def test_honest_evaluation_and_comparison_on_the_plant_set(work: Path) -> None:
    out = work / "eval.json"
    assert (
        cli_main(["eval-detector", "--dataset", str(work / "ds"), "--split", "test", "--resamples", "100", "--summary", str(out)])
        == 0
    )
    r = json.loads(out.read_text())
    assert r["data"]["dataset_hash"] == read_manifest(work / "ds")["hash"]
    card = r["per_class"]["cardboard"]
    assert (
        card["num_gt"] > 5
        and len(card["ap50"]["ci95"]) == 2
        and card["ap50"]["ci95"][0] <= card["ap50"]["value"] <= card["ap50"]["ci95"][1]
    )
    assert {"size=medium", "region=left", "region=centre", "region=right"} <= set(r["slices"])
    assert r["negative_frames"]["num_images"] > 0 and r["calibration"]["detections"] > 0
    cm = r["confusion_matrix"]
    assert cm["labels"][-1] == "background" and sum(map(sum, cm["counts"])) > 0
    cmp_out = work / "cmp.json"
    default = str(ROOT / "sorter" / "models" / "default.onnx")
    assert (
        cli_main(
            [
                "eval-detector",
                "--dataset",
                str(work / "ds"),
                "--compare",
                default,
                default,
                "--resamples",
                "100",
                "--summary",
                str(cmp_out),
            ]
        )
        == 0
    )
    c = json.loads(cmp_out.read_text())
    assert c["all"]["map50"]["diff"]["value"] == 0.0 and not c["all"]["map50"]["significant"]
