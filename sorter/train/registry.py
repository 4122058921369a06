"""A local model registry: every trained model with its record, one *current* model, promotion history, rollback.

Layout::

    registry/
      registry.json            entries, the current id, the history of promotions and rollbacks
      models/<id>/model.onnx   (+ model.fp16.onnx, model.int8.onnx, model.golden.json, metrics.json)
      current/model.onnx ...   a copy of the current model's files, replaced atomically on promote/rollback:
                               point ``detector.model`` at ``registry/current/model.onnx`` and reload the service

An entry's id is the first 12 hex digits of the SHA-256 of its ``model.onnx``. Entries record the dataset
hash, metrics, training command and code version from the run's ``metrics.json``, and every evaluation that
a promotion made.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.detect.model_files import file_sha256
from sorter.errors import ConfigError

FILES = ("model.onnx", "model.fp16.onnx", "model.int8.onnx", "model.golden.json", "metrics.json")
INDEX = "registry.json"
CURRENT = "current"


@dataclass
class Registry:
    """The registry folder (created on first use)."""

    root: Path

    # ------------------------------------------------------------------ storage
    def _read(self) -> dict[str, Any]:
        path = self.root / INDEX
        if not path.exists():
            return {"format": 1, "entries": {}, "current": None, "history": []}
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return doc

    def _write(self, doc: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / (INDEX + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        tmp.replace(self.root / INDEX)

    # ------------------------------------------------------------------ entries
    def register(self, run_dir: Path, now: str, name: str | None = None, base: str = "model") -> dict[str, Any]:
        """Copy a training run's model files into the registry and record it (idempotent for the same model)."""
        model = run_dir / f"{base}.onnx"
        if not model.is_file():
            raise ConfigError(f"'{run_dir}' holds no {base}.onnx; register the output folder of 'sorter train'")
        sha = file_sha256(model)
        mid = sha[:12]
        doc = self._read()
        if mid in doc["entries"]:
            entry: dict[str, Any] = doc["entries"][mid]
            return entry
        dest = self.root / "models" / mid
        dest.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            src = run_dir / f.replace("model", base, 1)
            if src.is_file():
                shutil.copy2(src, dest / f)
        metrics = (
            json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")) if (run_dir / "metrics.json").is_file() else {}
        )
        plant = metrics.get("plant_test") or {}
        entry = {
            "id": mid,
            "name": name or run_dir.name,
            "registered": now,
            "model_sha256": sha,
            "source": str(run_dir),
            "training_command": metrics.get("command"),
            "code_version": metrics.get("code_version"),
            "seed": metrics.get("seed"),
            "init": (metrics.get("train_config") or {}).get("init") or _init_of(metrics),
            "dataset_hashes": [h for h in [(metrics.get("data") or {}).get("dataset_hash")] if h],
            "metrics": {
                "rendered_heldout_map50": metrics.get("map50"),
                "plant_test_map50": (plant.get("map50") or {}).get("value"),
                "plant_test_map50_ci95": (plant.get("map50") or {}).get("ci95"),
            },
            "evaluations": [],
        }
        doc["entries"][mid] = entry
        self._write(doc)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        return sorted(self._read()["entries"].values(), key=lambda e: str(e["registered"]))

    def get(self, model_id: str) -> dict[str, Any]:
        """An entry by id (or unique id prefix, or name)."""
        doc = self._read()
        hits = [e for k, e in doc["entries"].items() if k.startswith(model_id) or e["name"] == model_id]
        if len(hits) != 1:
            known = ", ".join(f"{e['id']} ({e['name']})" for e in doc["entries"].values()) or "none"
            raise ConfigError(f"model {model_id!r} is {'ambiguous' if hits else 'not in the registry'}; registered: {known}")
        hit: dict[str, Any] = hits[0]
        return hit

    def model_path(self, model_id: str) -> Path:
        return self.root / "models" / str(self.get(model_id)["id"]) / "model.onnx"

    def current(self) -> dict[str, Any] | None:
        doc = self._read()
        cur = doc["current"]
        return None if cur is None else dict(doc["entries"][cur])

    def history(self) -> list[dict[str, Any]]:
        return list(self._read()["history"])

    def add_evaluation(self, model_id: str, evaluation: dict[str, Any]) -> None:
        doc = self._read()
        doc["entries"][self.get(model_id)["id"]]["evaluations"].append(evaluation)
        self._write(doc)

    # ------------------------------------------------------------------ current
    def _install(self, model_id: str) -> None:
        """Replace ``current/`` with the model's files (copy to a temporary folder, then rename)."""
        src = self.root / "models" / model_id
        tmp = self.root / (CURRENT + ".new")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(src, tmp)
        (tmp / "ID").write_text(model_id + "\n", encoding="utf-8")
        old = self.root / (CURRENT + ".old")
        cur = self.root / CURRENT
        if old.exists():
            shutil.rmtree(old)
        if cur.exists():
            cur.rename(old)
        tmp.rename(cur)
        if old.exists():
            shutil.rmtree(old)

    def promote(self, model_id: str, now: str, gate: dict[str, Any]) -> dict[str, Any]:
        """Make a model current (the gate's verdict is recorded with it)."""
        entry = self.get(model_id)
        doc = self._read()
        self._install(entry["id"])
        doc["history"].append({"action": "promote", "id": entry["id"], "previous": doc["current"], "at": now, "gate": gate})
        doc["current"] = entry["id"]
        self._write(doc)
        return entry

    def rollback(self, now: str) -> dict[str, Any]:
        """Go back to the model that was current before the current one.

        Raises:
            ConfigError: when nothing was promoted before the current model.
        """
        doc = self._read()
        cur = doc["current"]
        prev = next((h["previous"] for h in reversed(doc["history"]) if h["id"] == cur and h["action"] == "promote"), None)
        if cur is None or prev is None:
            raise ConfigError("nothing to roll back to: no model was current before this one")
        self._install(prev)
        doc["history"].append({"action": "rollback", "id": prev, "previous": cur, "at": now})
        doc["current"] = prev
        self._write(doc)
        return dict(doc["entries"][prev])


def _init_of(metrics: dict[str, Any]) -> str | None:
    cmd = str(metrics.get("command") or "")
    parts = cmd.split()
    return parts[parts.index("--init") + 1] if "--init" in parts and parts.index("--init") + 1 < len(parts) else None
