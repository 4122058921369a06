#!/usr/bin/env python3
"""Train the detector (same options as ``sorter train``), optionally shipping the result as the packaged default.

    .venv/bin/python scripts/train_detector.py --out runs/default --seed 0 --threads 2 --ship

``--ship`` copies ``model.onnx`` and its FP16 / INT8 variants and golden file
into ``sorter/models/`` as ``default.*``, with ``metrics.json`` and a
``README.md`` recording the training command, seed, data recipe and metrics.
``--ship-only`` ships an already finished run without training.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sorter.commands import train as train_cmd
from sorter.detect.model_files import MODELS_DIR

FILES = {
    "model.onnx": "default.onnx",
    "model.fp16.onnx": "default.fp16.onnx",
    "model.int8.onnx": "default.int8.onnx",
    "model.golden.json": "default.golden.json",
}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


_SIM_LOOK = (
    "random look (`RenderStyle.randomised`: belt colour and texture, light, vignetting, motion blur, noise, object "
    "colours, clutter)"
)
_REAL_LOOK = (
    "the real-belt look (`RenderStyle.randomised_real`: dark, worn and dirty belts with streaks and debris, "
    "specular plastics, printed labels, creased objects, camera heights 650-1800 mm)"
)


def _look_words(look: str) -> str:
    if look == "real":
        return _REAL_LOOK
    if look == "mixed":
        return f"either (half and half, drawn per world) a {_SIM_LOOK} or {_REAL_LOOK}"
    return _SIM_LOOK


def _base_lines(base: dict[str, Any] | None) -> list[str]:
    """README lines naming the model a fine-tuned default started from."""
    if not base:
        return []
    lines = [
        f"Fine-tuned from the previous default model (`default.onnx` sha256 `{base['sha256'][:16]}...`, code version"
        f" {base.get('code_version') or 'not recorded'}; held-out mAP@0.5 {_fmt(base['heldout_map50'])},"
        f" mAP@0.5:0.95 {_fmt(base['heldout_map'])} as measured when it was trained), which was trained with:",
        "",
        "```",
        base["command"],
        "```",
        "",
    ]
    return lines + _base_lines(base.get("base"))


def readme(metrics: dict[str, Any]) -> str:
    """The models folder's README, from a run's metrics."""
    spec = metrics["spec"]
    held = metrics["heldout"]
    t = metrics["timings"]
    env = metrics["environment"]
    recipe = metrics["data"]["train_recipe"]
    lines = [
        "# Shipped detector model",
        "",
        "`default.onnx` is the model the learned detector backends (`onnxruntime`, `tensorrt`, `torch`) load when",
        "`detector.model` is not set; `sorter run` uses it on the simulated line. It was trained only on images rendered",
        "by `sorter/sim` (no downloaded data or weights). Beside it: `default.fp16.onnx` (FP16 weights and body, FP32",
        "decode), `default.int8.onnx` (INT8 Q/DQ: symmetric per-channel weights in 7 bits of range so that AVX2 CPUs",
        "without VNNI do not saturate, activations calibrated on 64 rendered frames, the two output convolutions and the",
        "decode kept FP32), `default.golden.json` (one letterboxed rendered",
        "input and the ONNX Runtime CPU outputs of each variant, for the",
        "TensorRT parity self-test) and `metrics.json` (the full training and evaluation record).",
        "",
        "## Model",
        "",
        f"- input {spec['input_w_px']}x{spec['input_h_px']} BGR in [0, 1], letterboxed (pad {spec['pad_value']});"
        f" width {spec['width']},"
        f" heatmap stride {spec['out_stride']}, top-{spec['top_k']} peaks",
        "- outputs `boxes[1,K,4]` (x1, y1, x2, y2, input pixels), `scores[1,K]`, `classes[1,K]` (int32); NMS-free, ONNX opset 17",
        f"- classes: {', '.join(spec['class_names'])}",
        "- files: " + ", ".join(f"`{FILES[v['name']]}` {v['bytes'] / 1e6:.2f} MB" for v in metrics["files"].values()),
        "",
        "## How it was trained",
        "",
        "```",
        metrics["command"],
        "```",
        "",
        *_base_lines(metrics.get("base")),
        f"- seed: {metrics['seed']} (initial weights, data order, augmentation;"
        " rendered scenes use simulator seeds derived from it)",
        f"- training data: {recipe['n_images']} rendered 1280x720 frames, recipe seed {recipe['seed']}, "
        f"{recipe['frames_per_scene']} frames per simulated world; per world: {_look_words(recipe.get('look', 'sim'))}, density "
        f"{recipe['density_per_m2'][0]:g}-{recipe['density_per_m2'][1]:g} objects/m², belt speed "
        f"{recipe['speed_mm_s'][0]:g}-{recipe['speed_mm_s'][1]:g} mm/s, camera height "
        f"{recipe['mount_height_mm'][0]:g}-{recipe['mount_height_mm'][1]:g} mm, field of view "
        f"{recipe['hfov_deg'][0]:g}-{recipe['hfov_deg'][1]:g}°, tilt {recipe['tilt_deg'][0]:g}..{recipe['tilt_deg'][1]:g}°, "
        f"lens k1 {recipe['distortion_k1'][0]:g}..{recipe['distortion_k1'][1]:g}; plus flips, zoom/shift, gain, gamma, noise "
        "and blur at training time",
        f"- objects less than {recipe['min_visible_fraction']:g} visible (cut by the image border or hidden under others) are"
        " ignored: not learned, and not scored in evaluation (COCO `iscrowd`)",
        f"- {metrics['train_config']['epochs']} epochs, batch {metrics['train_config']['batch_size']}, AdamW lr "
        f"{metrics['train_config']['lr']:g} (cosine), EMA of the weights exported",
        f"- wall time {t['total_s'] / 60:.1f} min in total (training {t.get('train_s', 0) / 60:.1f} min), "
        f"{t['total_cpu_s'] / 60:.1f} CPU-minutes, torch {env['torch']} with {env['torch_threads']} threads",
        "",
        "## Held-out evaluation",
        "",
        f"{held['fp32']['num_images']} rendered frames from recipe seed {held['fp32']['recipe']['seed']},"
        " whose simulator seeds are disjoint from the training and validation data;"
        " full run-time pipeline (letterbox, ONNX Runtime on the CPU, mapping"
        " back to frame pixels); COCO mAP from pycocotools.",
        "",
        "| variant | mAP@0.5 | mAP@0.5:0.95 |",
        "|---|---|---|",
    ]
    for p, r in held.items():
        lines.append(f"| {p} | {_fmt(r['map50'])} | {_fmt(r['map'])} |")
    lines += ["", "| class (fp32) | objects | mAP@0.5 | mAP@0.5:0.95 |", "|---|---|---|---|"]
    for name, c in held["fp32"]["per_class"].items():
        lines.append(f"| {name} | {c['num_gt']} | {_fmt(c['map50'])} | {_fmt(c['map'])} |")
    lines += ["", "| size (fp32, frame pixels) | objects | mAP@0.5 | mAP@0.5:0.95 |", "|---|---|---|---|"]
    for name, c in held["fp32"]["per_size"].items():
        lines.append(f"| {name} | {c['num_gt']} | {_fmt(c['map50'])} | {_fmt(c['map'])} |")
    lines += [
        "",
        "Figures on real belt frames (zero-shot and after fine-tuning on a plant's own frames) are in `docs/data-engine.md`.",
        "Reproduce the evaluation: `sorter eval-detector --summary runs/eval.json`"
        " (defaults: this model, the same held-out set).",
        "Fine-tune on a plant's own annotated frames: `sorter train --init sorter/models/default.onnx --coco annotations.json"
        " --coco-images frames/ --train-images 1000 --lr 5e-4 --out runs/plant`.",
        "",
    ]
    return "\n".join(lines)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _init_path(command: str) -> Path | None:
    """The model a run was fine-tuned from (its ``--init``), if any."""
    words = shlex.split(command)
    for i, w in enumerate(words[:-1]):
        if w == "--init":
            return Path(words[i + 1])
    return None


def base_record(run_metrics: dict[str, Any], models_dir: Path) -> dict[str, Any] | None:
    """What a fine-tuned run started from, when that is the model shipped now.

    A run made with ``--init sorter/models/default.onnx`` cannot be reproduced
    once its own weights replace that file, so the replaced model's hash, its
    training command and its held-out figures (and its own base, if any) are
    kept in the new ``metrics.json`` and named in the README.
    """
    init = _init_path(run_metrics["command"])
    current = models_dir / "default.onnx"
    if init is None or init.name != current.name or not current.exists():
        return None
    old = json.loads((models_dir / "metrics.json").read_text(encoding="utf-8"))
    record = {
        "sha256": _sha256(current),
        "command": old["command"],
        "code_version": old.get("code_version"),
        "heldout_map50": old["heldout"]["fp32"]["map50"],
        "heldout_map": old["heldout"]["fp32"]["map"],
    }
    if old.get("base"):
        record["base"] = old["base"]
    return record


def ship(run_dir: Path) -> None:
    """Copy a finished run into the package as the default model."""
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    base = base_record(metrics, MODELS_DIR)
    if base is not None:
        metrics["base"] = base
    for src, dst in FILES.items():
        shutil.copyfile(run_dir / src, MODELS_DIR / dst)
    shipped = dict(metrics)
    shipped["model"] = "default.onnx"
    (MODELS_DIR / "metrics.json").write_text(json.dumps(shipped, indent=1), encoding="utf-8")
    (MODELS_DIR / "README.md").write_text(readme(metrics), encoding="utf-8")
    print(f"shipped {run_dir} as {MODELS_DIR / 'default.onnx'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="train_detector.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--ship", action="store_true", help="copy the result into sorter/models/ as the default model")
    ap.add_argument("--ship-only", action="store_true", help="ship the finished run in --out without training")
    train_cmd.add_arguments(ap)
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.ship_only:
        rc = train_cmd.main(args)
        if rc != 0:
            return rc
    if args.ship or args.ship_only:
        ship(Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
