"""Experiment tracking: parameters, per-epoch metrics, dataset hashes and artifacts of a training run.

Every run writes ``run.json`` in its output folder. With MLflow installed (the ``tracking`` extra) and
tracking not switched off, the same goes to MLflow too: to ``MLFLOW_TRACKING_URI`` or ``--tracking-uri``
when set, else to a local ``mlruns/`` store in the working folder (``mlflow ui --backend-store-uri mlruns``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal, Protocol

from sorter.errors import MissingDependencyError

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
Backend = Literal["auto", "mlflow", "json"]


class RunTracker(Protocol):
    """Where a training run reports."""

    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_artifact(self, path: Path) -> None: ...

    def finish(self, status: str = "FINISHED") -> None: ...


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


class JsonTracker:
    """Writes ``run.json`` (rewritten after every call, so a killed run still leaves its record)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / RUN_FILE
        self.doc: dict[str, Any] = {"params": {}, "metrics": [], "tags": {}, "artifacts": [], "status": "RUNNING"}
        if self.path.exists():  # a resumed run continues its record
            with contextlib.suppress(json.JSONDecodeError):
                self.doc = json.loads(self.path.read_text(encoding="utf-8"))
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, default=str), encoding="utf-8")
        tmp.replace(self.path)

    def log_params(self, params: dict[str, Any]) -> None:
        self.doc["params"].update(_flat(params))
        self._write()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.doc["metrics"].append({"step": step, **metrics})
        self._write()

    def set_tags(self, tags: dict[str, str]) -> None:
        self.doc["tags"].update(tags)
        self._write()

    def log_artifact(self, path: Path) -> None:
        self.doc["artifacts"].append(str(path))
        self._write()

    def finish(self, status: str = "FINISHED") -> None:
        self.doc["status"] = status
        self._write()


class MlflowTracker:
    """Logs to MLflow through its client API (no global "active run", so several runs in one process are fine)."""

    def __init__(self, experiment: str, run_name: str, tracking_uri: str | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise MissingDependencyError("mlflow", "tracking", "experiment tracking with MLflow") from None
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
        if uri.startswith("file:"):
            # MLflow 3 keeps its plain-folder store only on request; a local mlruns/ folder is what we want by default
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(experiment)
        self.run_id: str = self.client.create_run(exp_id, run_name=run_name).info.run_id
        self.tracking_uri = uri

    def log_params(self, params: dict[str, Any]) -> None:
        for k, v in _flat(params).items():
            self.client.log_param(self.run_id, k, (json.dumps(v) if isinstance(v, list | tuple) else str(v))[:6000])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.client.log_metric(self.run_id, k, float(v), step=step)

    def set_tags(self, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


class Trackers:
    """Fans every call out to several trackers (``run.json`` always, MLflow when on)."""

    def __init__(self, trackers: list[RunTracker]) -> None:
        self.trackers = trackers

    def log_params(self, params: dict[str, Any]) -> None:
        for t in self.trackers:
            t.log_params(params)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for t in self.trackers:
            t.log_metrics(metrics, step)

    def set_tags(self, tags: dict[str, str]) -> None:
        for t in self.trackers:
            t.set_tags(tags)

    def log_artifact(self, path: Path) -> None:
        for t in self.trackers:
            if path.exists():
                t.log_artifact(path)

    def finish(self, status: str = "FINISHED") -> None:
        for t in self.trackers:
            t.finish(status)


def open_trackers(out_dir: Path, backend: Backend, experiment: str, run_name: str, tracking_uri: str | None = None) -> Trackers:
    """``run.json`` plus MLflow when ``backend`` is ``mlflow`` (required) or ``auto`` (when installed)."""
    trackers: list[RunTracker] = [JsonTracker(out_dir)]
    if backend == "mlflow":
        trackers.append(MlflowTracker(experiment, run_name, tracking_uri))
    elif backend == "auto":
        try:
            trackers.append(MlflowTracker(experiment, run_name, tracking_uri))
        except MissingDependencyError:
            log.info("MLflow is not installed: the run is recorded in %s only", out_dir / RUN_FILE)
    return Trackers(trackers)
