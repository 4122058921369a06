"""``sorter eval-detector``: the JSON summary, and identical scores on rendered frames and on the same frames as COCO files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sorter.cli import main as cli_main


@pytest.fixture(scope="module")
def rendered_eval(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:  # type: ignore[type-arg]
    d = tmp_path_factory.mktemp("eval")
    rc = cli_main(
        ["eval-detector", "--summary", str(d / "synthetic.json"), "--heldout-images", "6", "--heldout-seed", "777001",
         "--write-coco", str(d / "coco")]
    )
    assert rc == 0
    return json.loads((d / "synthetic.json").read_text()), d


def test_summary_has_the_documented_keys(rendered_eval: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    s, _ = rendered_eval
    assert 0.5 <= s["map50"] <= 1.0 and 0.0 < s["map"] <= s["map50"]
    assert set(s["per_size"]) == {"all", "small", "medium", "large"}
    assert set(s["per_class"]) == {"pet_bottle", "hdpe_container", "alu_can", "cardboard", "paper", "film"}
    cm = s["confusion_matrix"]
    assert len(cm["counts"]) == 7 and all(len(r) == 7 for r in cm["counts"]) and cm["labels"][-1] == "background"
    assert sum(map(sum, cm["counts"])) >= s["num_gt"] - 1
    assert s["num_images"] == 6 and s["data"]["synthetic_recipe"]["seed"] == 777001
    assert s["backend"] == "onnxruntime" and s["model"].endswith("default.onnx")


def test_same_frames_as_coco_files_score_identically(rendered_eval: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    s, d = rendered_eval
    rc = cli_main(["eval-detector", "--summary", str(d / "coco.json"), "--coco", str(d / "coco" / "annotations.json")])
    assert rc == 0
    c = json.loads((d / "coco.json").read_text())
    assert c["data"]["coco"].endswith("annotations.json")
    assert c["num_gt"] == s["num_gt"] and c["num_ignored"] == s["num_ignored"]
    assert c["map50"] == pytest.approx(s["map50"], abs=1e-9)
    assert c["map"] == pytest.approx(s["map"], abs=1e-3)  # boxes are stored to 0.01 px in COCO JSON
    assert c["confusion_matrix"]["counts"] == s["confusion_matrix"]["counts"]


def test_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "none.onnx")
    rc = cli_main(["eval-detector", "--model", missing, "--summary", str(tmp_path / "s.json"), "--heldout-images", "1"])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err
