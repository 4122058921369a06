"""``sorter eval-detector``: COCO mAP of a detector model on the held-out rendered set or on a COCO dataset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sorter.errors import SorterError

HELP = "evaluate a detector model (COCO mAP@0.5 and @0.5:0.95, per class, per size, confusion matrix) and write a JSON summary"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="PATH", help="ONNX model (default: the packaged default model)")
    p.add_argument(
        "--summary", required=True, type=Path, metavar="PATH", help="JSON summary to write (keys map50, map, per_class...)"
    )
    p.add_argument(
        "--backend",
        default="onnxruntime",
        choices=("onnxruntime", "torch", "tensorrt"),
        help="detector backend (default onnxruntime)",
    )
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"), help="model variant (default fp32)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--min-score", type=float, default=0.01, help="lowest score kept for the mAP curves (default 0.01)")
    p.add_argument("--confusion-min-score", type=float, default=0.3, help="score threshold of the confusion matrix (default 0.3)")
    p.add_argument(
        "--coco", type=Path, metavar="ANNOTATIONS.json", help="evaluate on this COCO dataset instead of the rendered held-out set"
    )
    p.add_argument("--coco-images", type=Path, metavar="DIR", help="image folder of --coco (default: beside the annotations)")
    p.add_argument("--heldout-images", type=int, default=300, help="rendered held-out images (default 300)")
    p.add_argument(
        "--heldout-seed", type=int, default=None, help="base seed of the held-out set (default: the one never used in training)"
    )
    p.add_argument("--write-coco", type=Path, metavar="DIR", help="also save the rendered held-out set as a COCO dataset here")


def main(args: argparse.Namespace) -> int:
    from sorter.config import Config, DetectorConfig
    from sorter.detect.registry import create_detector
    from sorter.entities import MATERIAL_CLASSES, Frame
    from sorter.train.evaluate import evaluate
    from sorter.train.samples import SampleSet

    try:
        cfg = DetectorConfig(
            type=args.backend, model=args.model, precision=args.precision, device=args.device, min_score=args.min_score
        )
        detector = create_detector(Config(detector=cfg), MATERIAL_CLASSES)
        data: SampleSet
        source: dict[str, Any]
        if args.coco is not None:
            from sorter.train.coco import CocoDataset

            data = CocoDataset(args.coco, args.coco_images, MATERIAL_CLASSES)
            source = {"coco": str(args.coco), "images": str(args.coco_images or args.coco.parent)}
        else:
            from sorter.train.synth import HELDOUT_SEED, SynthDataset, SynthRecipe

            recipe = SynthRecipe(
                n_images=args.heldout_images, seed=HELDOUT_SEED if args.heldout_seed is None else args.heldout_seed
            )
            data = SynthDataset(recipe, MATERIAL_CLASSES)
            source = {"synthetic_recipe": recipe.to_dict()}
            if args.write_coco is not None:
                from sorter.train.coco import write_coco

                write_coco((data[i] for i in range(len(data))), args.write_coco, MATERIAL_CLASSES, ext=".png")
        summary = evaluate(
            lambda img: detector.detect(Frame(image=img, t_capture_ns=0, s_capture_mm=0.0, frame_index=0)),
            data,
            MATERIAL_CLASSES,
            args.confusion_min_score,
        )
        detector.close()
    except SorterError as e:
        print(f"sorter eval-detector: {e}", file=sys.stderr)
        return 2
    from sorter.detect.model_files import default_model_path

    summary = {
        "map50": summary["map50"],
        "map": summary["map"],
        **{k: v for k, v in summary.items() if k not in ("map50", "map")},
        "model": str(args.model or default_model_path()),
        "backend": args.backend,
        "precision": args.precision,
        "device": args.device,
        "data": source,
    }
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(
        f"mAP@0.5 = {summary['map50']:.4f}  mAP@0.5:0.95 = {summary['map']:.4f}  "
        f"({summary['num_images']} images, {summary['num_gt']} objects)"
    )
    for name, m in summary["per_class"].items():
        if m["map50"] is not None:
            print(f"  {name:16s} mAP@0.5 {m['map50']:.4f}  mAP {m['map']:.4f}  ({m['num_gt']} objects)")
    print(f"summary written to {args.summary}")
    return 0
