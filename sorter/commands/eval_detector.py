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
    r = p.add_argument_group("on Ray (the ray extra): shards of the set on Ray workers, the same mAP as one process")
    r.add_argument("--address", default=None, metavar="ADDRESS",
                   help="local (a Ray instance on this machine), auto, HOST:PORT of a head, or ray://HOST:PORT")
    r.add_argument("--shards", type=int, default=None, metavar="N", help="shards of the set (default: 2 per CPU of Ray)")
    r.add_argument("--num-cpus", type=int, default=None, metavar="N", help="CPUs of a local Ray instance (default: all)")
    h = p.add_argument_group("honest evaluation (bootstrap intervals, slices, calibration)")
    h.add_argument("--honest", action="store_true", help="bootstrap report (per class, size, condition; calibration) on any set")
    h.add_argument("--dataset", type=Path, metavar="DIR", help="evaluate on a dataset from 'sorter dataset build' (see --split)")
    h.add_argument("--split", default="test", choices=("train", "val", "test"), help="dataset split (default test)")
    h.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                   help="compare two models on the same set: per class, size and condition, which differences are significant")
    h.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the images (default 1000)")
    h.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def _truth(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from sorter.train.scoring import coco_truth, rendered_truth

    if args.dataset is not None:
        from sorter.train.data.manifest import read_manifest

        manifest = read_manifest(args.dataset)
        return coco_truth(args.dataset / f"{args.split}.json", args.dataset), {
            "dataset": str(args.dataset), "split": args.split, "dataset_hash": manifest["hash"]}
    if args.coco is not None:
        return coco_truth(args.coco, args.coco_images or args.coco.parent), {"coco": str(args.coco)}
    return rendered_truth(args.heldout_images, args.heldout_seed), {"rendered_heldout": args.heldout_images}


def _honest(args: argparse.Namespace) -> int:
    """``--dataset`` or ``--compare``: bootstrap report of one model, or a paired comparison of two."""
    from sorter.entities import MATERIAL_CLASSES
    from sorter.train.honest import compare_images, evaluate_images, significant_lines
    from sorter.train.scoring import score_models

    truth, source = _truth(args)
    if args.compare is not None:
        a, b = args.compare
        images_a, images_b = score_models([a, b], truth, args.precision)
        summary = compare_images(images_a, images_b, MATERIAL_CLASSES, n_resamples=args.resamples, seed=args.seed,
                                 operating_score=args.confusion_min_score)
        summary.update({"a": str(a), "b": str(b), "data": source})
        lines = significant_lines(summary, ("A", "B"))
        m = summary["all"]["map50"]
        print(f"A = {a}\nB = {b}\non {summary['num_images']} images: mAP@0.5 A {m['a']} B {m['b']}, "
              f"difference {m['diff']['value']} {m['diff']['ci95']}")
        print("significant differences (95 % bootstrap interval excludes 0):" if lines else
              "no significant difference at 95 % on this set")
        for line in lines:
            print("  " + line)
    else:
        model = Path(args.model) if args.model else None
        from sorter.detect.model_files import default_model_path

        (images,) = score_models([model or default_model_path()], truth, args.precision)
        summary = evaluate_images(images, MATERIAL_CLASSES, n_resamples=args.resamples, seed=args.seed,
                                  operating_score=args.confusion_min_score)
        summary.update({"model": str(model or default_model_path()), "data": source})
        m = summary["map50"]
        print(f"mAP@0.5 = {m['value']} {m['ci95']} (95 % bootstrap over {summary['num_images']} images)")
        for name, c in summary["per_class"].items():
            if c["num_gt"]:
                print(f"  {name:16s} AP@0.5 {c['ap50']['value']} {c['ap50']['ci95']}  ({c['num_gt']} objects)")
        fp = summary["negative_frames"]["false_positives_per_frame"]
        if fp:
            n_neg = summary["negative_frames"]["num_images"]
            print(f"  bare-belt frames: {n_neg}, false positives per frame {fp['value']} {fp['ci95']}")
        print(f"  expected calibration error {summary['calibration']['ece']}")
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(f"summary written to {args.summary}")
    return 0


def _sharded(args: argparse.Namespace, cfg: Any, data: Any, source: dict[str, Any]) -> dict[str, Any]:
    """Evaluate on Ray workers (``--address``); the same summary as one process."""
    from sorter.entities import MATERIAL_CLASSES
    from sorter.train.sharded import EvalSet, evaluate_sharded

    if args.coco is not None:
        spec = EvalSet(coco=args.coco, coco_images=args.coco_images)
    else:
        spec = EvalSet(recipe=data.recipe)
    address = None if args.address == "local" else args.address
    shards = args.shards or 2 * (args.num_cpus or 2)
    print(f"evaluating {len(data)} images in {shards} shards on Ray ({args.address})", flush=True)
    summary = evaluate_sharded(cfg, spec, MATERIAL_CLASSES, args.confusion_min_score, shards, address, args.num_cpus,
                               on_shard=lambda done, n: print(f"  shard {done}/{n} done", flush=True))
    summary["ray"] = {"address": args.address, "shards": shards}
    return summary


def main(args: argparse.Namespace) -> int:
    if args.address is not None and (args.dataset is not None or args.compare is not None or args.honest):
        print("sorter eval-detector: --address shards the COCO mAP evaluation; the honest evaluation (--honest, --dataset, "
              "--compare) runs in one process: drop --address", file=sys.stderr)
        return 2
    if (args.shards is not None and args.shards < 1) or (args.num_cpus is not None and args.num_cpus < 1):
        print(f"sorter eval-detector: --shards {args.shards} / --num-cpus {args.num_cpus}: give at least 1", file=sys.stderr)
        return 2
    if args.dataset is not None or args.compare is not None or args.honest:
        try:
            return _honest(args)
        except SorterError as e:
            print(f"sorter eval-detector: {e}", file=sys.stderr)
            return 2
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
        if args.address is not None:
            detector.close()
            summary = _sharded(args, cfg, data, source)
        else:
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
