"""``sorter train``: train the detector on rendered (and/or COCO) data; write checkpoint, ONNX variants and metrics."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from sorter.errors import ConfigError, MissingDependencyError, SorterError

HELP = "train the detector on rendered and/or COCO data; writes checkpoint.pt, model*.onnx, metrics.jsonl and metrics.json"

DEFAULT_OUT = "runs/detector"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size {text!r}: expected WIDTHxHEIGHT, e.g. 320x192") from None
    return w, h


def _command_line() -> str:
    """The command as a user would type it (``python -m sorter.cli train`` is recorded as ``sorter train``)."""
    prog = Path(sys.argv[0]).name
    return shlex.join(["sorter" if prog in ("cli.py", "__main__.py", "sorter") else prog, *sys.argv[1:]])


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default {DEFAULT_OUT})")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")
    g.add_argument("--export-only", action="store_true", help="skip training: export and evaluate the checkpoint in --out")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    m = p.add_argument_group("model")
    m.add_argument(
        "--input-size", type=_size, default=(384, 224), metavar="WxH", help="network input, multiples of 32 (default 384x224)"
    )
    m.add_argument("--width", type=int, default=16, help="base channels of the backbone (default 16)")
    m.add_argument("--stride", type=int, default=4, choices=(4, 8), help="heatmap stride (default 4)")
    m.add_argument("--top-k", type=int, default=100, help="detections per image (static output size, default 100)")
    m.add_argument("--init", type=Path, metavar="PATH", help="fine-tune from a checkpoint.pt or a sorter .onnx")
    t = p.add_argument_group("training")
    t.add_argument("--seed", type=int, default=0, help="seed of everything random (default 0)")
    t.add_argument("--epochs", type=int, default=21)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (use ~5e-4 when fine-tuning)")
    t.add_argument(
        "--warmup-steps", type=int, default=150, help="linear learning-rate warm-up steps (default 150; ~20 when fine-tuning)"
    )
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    t.add_argument(
        "--edge-loss-weight",
        type=float,
        default=0.0,
        help="weight of an L1 loss on the box edges in heatmap cells beside GIoU (0: GIoU alone, the default; "
        "2 pulls a typical object's ends about twice as hard as GIoU)",
    )
    t.add_argument("--time-budget-min", type=float, default=None, help="stop after the epoch that crosses this many minutes")
    d = p.add_argument_group("data")
    d.add_argument("--train-images", type=int, default=4000, help="rendered training images (0: COCO only; default 4000)")
    d.add_argument("--val-images", type=int, default=200, help="rendered validation images (default 200)")
    d.add_argument("--heldout-images", type=int, default=300, help="rendered held-out images for the final evaluation (0: skip)")
    d.add_argument(
        "--coco",
        action="append",
        default=[],
        type=Path,
        metavar="ANNOTATIONS.json",
        help="COCO annotations to train on (repeatable)",
    )
    d.add_argument(
        "--coco-images",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="image folder of the matching --coco (default: beside it)",
    )
    d.add_argument("--look", choices=("sim", "real", "mixed"), default="sim",
                   help="rendered look: sim (default), real (worn, dirty belts, debris, glare, labels, creases, wider scales) "
                   "or mixed (each scene one of the two, half and half unless --look-real-share)")
    d.add_argument("--look-real-share", type=float, default=None, metavar="F",
                   help="with --look mixed: the share of rendered scenes drawn with the real look (default 0.5)")
    d.add_argument("--dataset", type=Path, metavar="DIR",
                   help="a dataset from 'sorter dataset build': train on its train split (bare-belt frames as hard negatives), "
                        "evaluate on its test split")
    d.add_argument("--real-share", type=float, default=None, metavar="F",
                   help="repeat the real images to make up about this share of each epoch, the rest rendered (e.g. 0.5)")
    tr = p.add_argument_group("experiment tracking")
    tr.add_argument("--tracking", choices=("auto", "mlflow", "json"), default="auto",
                    help="run.json always; MLflow too when installed (auto, default) or required (mlflow)")
    tr.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default MLFLOW_TRACKING_URI, else ./mlruns)")
    tr.add_argument("--experiment", default="sorter-detector", help="MLflow experiment name")
    d.add_argument(
        "--cache-dir", type=Path, default=Path("runs/cache"), help="folder for letterboxed dataset caches (default runs/cache)"
    )
    r = p.add_argument_group("data-parallel training on Ray (the ray extra)")
    r.add_argument("--address", default=None, metavar="ADDRESS",
                   help="train on Ray workers: 'local' (a Ray instance on this machine), 'auto' or host:port of a head; "
                        "each step's batch is shared out between the workers (default: one process)")
    r.add_argument("--workers", type=int, default=None, help="training workers with --address (default 2)")
    r.add_argument("--cpus-per-worker", type=int, default=None,
                   help="CPUs reserved per worker, also its torch threads unless --threads (default 1)")


def main(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print(MissingDependencyError("torch", "train", "sorter train"), file=sys.stderr)
        return 2
    from sorter.detect.spec import ModelSpec
    from sorter.train.job import TrainOptions, run_job
    from sorter.train.ray_train import RaySetup
    from sorter.train.synth import MIXED_REAL_SHARE
    from sorter.train.trainer import TrainConfig

    if len(args.coco_images) > len(args.coco):
        print("--coco-images given more often than --coco; give one folder per annotation file", file=sys.stderr)
        return 2
    images = list(args.coco_images) + [None] * (len(args.coco) - len(args.coco_images))
    if not args.edge_loss_weight >= 0:
        print(f"--edge-loss-weight {args.edge_loss_weight:g}: use 0 (GIoU alone) or a positive weight, e.g. 2", file=sys.stderr)
        return 2
    look_real_share = MIXED_REAL_SHARE if args.look_real_share is None else args.look_real_share
    if args.look_real_share is not None and args.look != "mixed":
        print(f"--look-real-share {args.look_real_share:g} applies to --look mixed only (this run: --look {args.look})",
              file=sys.stderr)
        return 2
    if not 0.0 <= look_real_share <= 1.0:
        print(f"--look-real-share {look_real_share:g}: give a share from 0 to 1, e.g. 0.25 (a quarter of the scenes real)",
              file=sys.stderr)
        return 2
    if args.address is None and (args.workers is not None or args.cpus_per_worker is not None):
        print("--workers and --cpus-per-worker apply to training on Ray: add --address local (or a cluster's address)",
              file=sys.stderr)
        return 2
    try:
        ray = None if args.address is None else RaySetup(
            args.address, 2 if args.workers is None else args.workers, 1 if args.cpus_per_worker is None else args.cpus_per_worker
        )
    except ConfigError as e:
        print(f"sorter train: {e}", file=sys.stderr)
        return 2
    try:
        spec = ModelSpec(
            input_w_px=args.input_size[0],
            input_h_px=args.input_size[1],
            width=args.width,
            out_stride=args.stride,
            top_k=args.top_k,
        )
    except ValueError as e:
        print(f"invalid model options: {e}", file=sys.stderr)
        return 2
    opts = TrainOptions(
        out_dir=Path(args.out),
        spec=spec,
        train=TrainConfig(
            seed=args.seed,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup_steps=args.warmup_steps,
            threads=args.threads,
            time_budget_s=None if args.time_budget_min is None else 60.0 * args.time_budget_min,
            edge_loss_weight=args.edge_loss_weight,
        ),
        train_images=args.train_images,
        val_images=args.val_images,
        heldout_images=args.heldout_images,
        coco=list(zip(args.coco, images, strict=True)),
        init=args.init,
        resume=args.resume,
        export_only=args.export_only,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
        command=_command_line(),
        dataset=args.dataset,
        real_share=args.real_share,
        tracking=args.tracking,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        look=args.look,
        look_real_share=look_real_share,
        ray=ray,
    )
    try:
        metrics = run_job(opts)
    except (ConfigError, SorterError) as e:
        print(f"sorter train: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if ray is not None:
        print(f"trained on Ray ({ray.address}) with {ray.workers} workers, {ray.cpus_per_worker} CPU each")
    print(f"wrote {out / 'model.onnx'} (+ fp16, int8, golden), {out / 'checkpoint.pt'}, {out / 'metrics.json'}")
    plant = metrics.get("plant_test") or {}
    if plant.get("map50", {}).get("value") is not None:
        ci = plant["map50"]["ci95"] or [float("nan")] * 2
        fp = (plant.get("negative_frames") or {}).get("false_positives_per_frame") or {}
        print(f"plant test split: mAP@0.5 = {plant['map50']['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] "
              f"on {plant['num_images']} images; bare-belt false positives per frame {fp.get('value')}")
    if "map50" in metrics:
        print(
            f"held-out: mAP@0.5 = {metrics['map50']:.4f}, mAP@0.5:0.95 = {metrics['map']:.4f} "
            f"(total {metrics['timings']['total_s']:.0f} s)"
        )
    return 0
