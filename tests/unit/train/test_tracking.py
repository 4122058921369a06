"""Run tracking: run.json always, MLflow (a real local file store) when installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sorter.train.tracking import RUN_FILE, open_trackers


def _log(trackers, tmp: Path) -> None:  # type: ignore[no-untyped-def]
    trackers.log_params({"seed": 3, "train": {"lr": 0.0005, "epochs": 2}, "coco": ["a.json"]})
    trackers.set_tags({"sorter.dataset_hash": "ab" * 32})
    for e in (1, 2):
        trackers.log_metrics({"train_loss": 1.0 / e, "val_map50": 0.4 * e}, e)
    art = tmp / "metrics.json"
    art.write_text("{}")
    trackers.log_artifact(art)
    trackers.finish()


def test_json_record_holds_params_metrics_tags_and_artifacts(tmp_path: Path) -> None:
    _log(open_trackers(tmp_path, "json", "exp", "run"), tmp_path)
    doc = json.loads((tmp_path / RUN_FILE).read_text())
    assert doc["params"]["train.lr"] == 0.0005 and doc["tags"]["sorter.dataset_hash"] == "ab" * 32
    assert [m["step"] for m in doc["metrics"]] == [1, 2] and doc["metrics"][1]["val_map50"] == 0.8
    assert doc["artifacts"] == [str(tmp_path / "metrics.json")] and doc["status"] == "FINISHED"


def test_mlflow_run_in_a_local_store(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the 'tracking' extra (mlflow-skinny) is not installed")
    uri = (tmp_path / "mlruns").as_uri()
    trackers = open_trackers(tmp_path / "out", "mlflow", "sorter-test", "run-a", uri)
    run_id = trackers.trackers[1].run_id  # type: ignore[attr-defined]
    _log(trackers, tmp_path)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.params["train.lr"] == "0.0005" and run.data.params["seed"] == "3"
    assert run.data.tags["sorter.dataset_hash"] == "ab" * 32 and run.info.status == "FINISHED"
    hist = client.get_metric_history(run_id, "val_map50")
    assert [(m.step, m.value) for m in hist] == [(1, 0.4), (2, 0.8)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["metrics.json"]
    assert (tmp_path / "out" / RUN_FILE).exists()
