"""``sorter model``: the local model registry: register, list, show, promote through the gate, roll back."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sorter.errors import SorterError

HELP = "local model registry: register a training run, list, show, promote (gated on held-out sets), roll back"

DEFAULT_REGISTRY = os.environ.get("SORTER_REGISTRY", "runs/registry")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry",
        type=Path,
        default=Path(DEFAULT_REGISTRY),
        help=f"registry folder (default SORTER_REGISTRY or {DEFAULT_REGISTRY})",
    )
    sub = p.add_subparsers(dest="model_cmd", metavar="ACTION", required=True)
    r = sub.add_parser("register", help="add a 'sorter train' output folder to the registry")
    r.add_argument("run", type=Path, metavar="RUN_DIR")
    r.add_argument("--name", default=None)
    r.add_argument("--base", default="model", help="file stem in the folder (default model; 'default' for sorter/models)")
    sub.add_parser("list", help="every registered model, the current one marked")
    s = sub.add_parser("show", help="one entry in full")
    s.add_argument("id", metavar="ID")
    pr = sub.add_parser("promote", help="make a model current if it passes the gate")
    pr.add_argument("id", metavar="ID")
    pr.add_argument("--dataset", type=Path, metavar="DIR", help="the plant's dataset: both models are compared on its --split")
    pr.add_argument("--split", default="test", choices=("val", "test"))
    pr.add_argument("--rendered-images", type=int, default=300, help="rendered held-out images (0: skip that check; default 300)")
    pr.add_argument(
        "--replay", type=Path, metavar="RECORDING", help="also require a replay A/B on this recording ('sorter record')"
    )
    pr.add_argument("--replay-config", action="append", default=None, metavar="PATH", help="config of the replay")
    pr.add_argument("--resamples", type=int, default=1000)
    pr.add_argument("--force", action="store_true", help="promote even if the gate refuses (recorded as forced)")
    sub.add_parser("rollback", help="make the previously current model current again")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _rendered_map50(models: list[Path], n_images: int) -> list[float]:
    from sorter.entities import MATERIAL_CLASSES
    from sorter.train.honest import evaluate_images
    from sorter.train.scoring import rendered_truth, score_models

    scored = score_models(models, rendered_truth(n_images))
    return [float(evaluate_images(s, MATERIAL_CLASSES, n_resamples=0, slices=None)["map50"]["value"] or 0.0) for s in scored]


def _replay(recording: Path, configs: list[str] | None, model: Path) -> dict[str, Any] | None:
    """``sorter replay`` of a recording with a model; its summary, or None when it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.json"
        cmd = [
            sys.executable,
            "-m",
            "sorter.cli",
            "replay",
            str(recording),
            "--quiet",
            "--summary",
            str(out),
            "--set",
            "detector.type=onnxruntime",
            "--set",
            f"detector.model={model}",
        ]
        for c in configs or []:
            cmd += ["--config", c]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0 or not out.exists():
            print(f"replay with {model} failed (exit {done.returncode}): {done.stderr.strip()[-400:]}", file=sys.stderr)
            return None
        summary: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return summary


def _promote(reg: Any, args: argparse.Namespace) -> int:
    from sorter.entities import MATERIAL_CLASSES
    from sorter.train.gate import judge
    from sorter.train.honest import compare_images
    from sorter.train.scoring import coco_truth, score_models

    cand = reg.get(args.id)
    cur = reg.current()
    cand_path = reg.model_path(cand["id"])
    if cur is not None and cur["id"] == cand["id"]:
        print(f"{cand['id']} is already current")
        return 0
    plant = rendered = replay = None
    evaluation: dict[str, Any] = {"at": _now()}
    if cur is not None:
        cur_path = reg.model_path(cur["id"])
        if args.dataset is not None:
            from sorter.train.data.manifest import read_manifest

            a, b = score_models([cur_path, cand_path], coco_truth(args.dataset / f"{args.split}.json", args.dataset))
            plant = compare_images(a, b, MATERIAL_CLASSES, n_resamples=args.resamples)
            evaluation["plant"] = {
                "dataset_hash": read_manifest(args.dataset)["hash"],
                "split": args.split,
                "current": cur["id"],
                "map50": plant["all"]["map50"],
            }
        if args.rendered_images > 0:
            r_cur, r_cand = _rendered_map50([cur_path, cand_path], args.rendered_images)
            rendered = (r_cur, r_cand)
            evaluation["rendered"] = {"images": args.rendered_images, "current": r_cur, "candidate": r_cand}
        if args.replay is not None:
            replay = (_replay(args.replay, args.replay_config, cur_path), _replay(args.replay, args.replay_config, cand_path))
    verdict = judge(plant, rendered, replay)
    for c in verdict.checks:
        print("  check: " + json.dumps(c))
    reg.add_evaluation(cand["id"], {**evaluation, "gate": verdict.to_dict()})
    if not verdict.passed and not args.force:
        print(
            f"REFUSED: {cand['id']} ({cand['name']}) stays a candidate; {'current' if cur else 'nothing'} "
            f"{cur['id'] if cur else ''} stays current"
        )
        for r in verdict.reasons:
            print(f"  - {r}")
        return 1
    gate = {**verdict.to_dict(), "forced": bool(args.force and not verdict.passed)}
    reg.promote(cand["id"], _now(), gate)
    print(
        f"PROMOTED: {cand['id']} ({cand['name']}) is current: {reg.root / 'current' / 'model.onnx'}"
        + (" (forced past the gate)" if gate["forced"] else "")
    )
    print("  running services: point detector.model at that file and reload (systemctl reload sorter)")
    return 0


def main(args: argparse.Namespace) -> int:
    from sorter.train.registry import Registry

    reg = Registry(args.registry)
    try:
        if args.model_cmd == "register":
            e = reg.register(args.run, _now(), args.name, args.base)
            print(
                f"registered {e['id']} ({e['name']}): rendered mAP@0.5 {e['metrics']['rendered_heldout_map50']}, "
                f"plant mAP@0.5 {e['metrics']['plant_test_map50']}, "
                f"dataset {', '.join(h[:16] for h in e['dataset_hashes']) or '-'}"
            )
            return 0
        if args.model_cmd == "list":
            cur = reg.current()
            for e in reg.entries():
                mark = "*" if cur and cur["id"] == e["id"] else " "
                m = e["metrics"]
                print(
                    f"{mark} {e['id']}  {e['name']:24s} {e['registered']}  rendered {m['rendered_heldout_map50']}  "
                    f"plant {m['plant_test_map50']}"
                )
            return 0
        if args.model_cmd == "show":
            print(json.dumps(reg.get(args.id), indent=1))
            return 0
        if args.model_cmd == "promote":
            return _promote(reg, args)
        e = reg.rollback(_now())
        print(f"ROLLED BACK: {e['id']} ({e['name']}) is current again: {reg.root / 'current' / 'model.onnx'}")
        return 0
    except SorterError as e:
        print(f"sorter model: {e}", file=sys.stderr)
        return 2
