"""One training job end to end: data -> training -> export of every variant -> held-out evaluation -> metrics.json.

Used by ``sorter train`` and ``scripts/train_detector.py``.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from sorter.config import DetectorConfig
from sorter.detect.preprocess import RESIZE_NAME
from sorter.detect.spec import ModelSpec
from sorter.entities import MATERIAL_CLASSES, Frame, ImageArray
from sorter.errors import ConfigError
from sorter.train.coco import CocoDataset
from sorter.train.data.manifest import read_manifest
from sorter.train.packed import PackedSet, cached_pack, concat, pack
from sorter.train.ray_train import RaySetup, fit_on_ray
from sorter.train.synth import HELDOUT_IMAGES, HELDOUT_SEED, MIXED_REAL_SHARE, SynthDataset, SynthRecipe, scene_seeds
from sorter.train.tracking import Trackers, open_trackers
from sorter.train.trainer import CHECKPOINT, TrainConfig, Trainer
from sorter.train.variants import export_variants

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"


@dataclass
class TrainOptions:
    """Everything a training job needs (the command-line options of ``sorter train``).

    Attributes:
        out_dir: output folder (checkpoint, ONNX variants, metrics).
        spec: model architecture and input size.
        train: optimiser, epochs, augmentation, seed.
        train_images: rendered training images (0: COCO data only).
        val_images: rendered validation images (monitoring during training).
        heldout_images: rendered held-out images for the final evaluation (0: skip).
        heldout_seed: base seed of the held-out set.
        coco: ``(annotations.json, images folder or None)`` pairs to train on too.
        init: checkpoint or ONNX to fine-tune from.
        resume: continue from ``out_dir/checkpoint.pt`` if present.
        export_only: skip training; export and evaluate the checkpoint in ``out_dir``.
        cache_dir: folder for packed (letterboxed) datasets.
        calib_images: images used to calibrate the INT8 variant.
        progress: show progress bars.
        command: the command line, recorded in the metrics.
        dataset: a dataset folder (``sorter dataset build``): its train split is trained on (bare-belt frames
            included as hard negatives), its test split evaluated after training.
        real_share: repeat the real (COCO and dataset) images so they make up about this share of every epoch
            (None: each image once); the rest is rendered, so classes the plant has not labelled are not forgotten.
        tracking: ``auto`` (MLflow when installed), ``mlflow`` or ``json`` (``run.json`` only).
        tracking_uri: MLflow tracking URI (default ``MLFLOW_TRACKING_URI`` or ``./mlruns``).
        experiment: MLflow experiment name.
        look: domain randomisation of the rendered training and validation frames (``sim`` or ``real``); the
            held-out set always keeps the original look, so figures stay comparable.
        look_real_share: with ``look="mixed"``, the share of rendered scenes drawn with the real look.
        ray: train data-parallel on Ray workers (None: in this process); export and evaluation stay here.
    """

    out_dir: Path
    spec: ModelSpec = field(default_factory=ModelSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    train_images: int = 4000
    val_images: int = 200
    heldout_images: int = HELDOUT_IMAGES
    heldout_seed: int = HELDOUT_SEED
    coco: list[tuple[Path, Path | None]] = field(default_factory=list)
    init: Path | None = None
    resume: bool = False
    export_only: bool = False
    cache_dir: Path = Path("runs/cache")
    calib_images: int = 64
    progress: bool = True
    command: str = ""
    dataset: Path | None = None
    real_share: float | None = None
    tracking: str = "json"
    tracking_uri: str | None = None
    experiment: str = "sorter-detector"
    look: str = "sim"
    look_real_share: float = MIXED_REAL_SHARE
    ray: RaySetup | None = None

    def recipes(self) -> tuple[SynthRecipe, SynthRecipe, SynthRecipe]:
        """Training, validation and held-out recipes (different base seeds)."""
        s = self.train.seed
        return (
            SynthRecipe(n_images=self.train_images, seed=2 * s, look=self.look, mixed_real_share=self.look_real_share),
            SynthRecipe(n_images=self.val_images, seed=2 * s + 1, look=self.look, mixed_real_share=self.look_real_share),
            SynthRecipe(n_images=self.heldout_images, seed=self.heldout_seed),
        )


def heldout_recipe(n_images: int = HELDOUT_IMAGES, seed: int = HELDOUT_SEED) -> SynthRecipe:
    """The default held-out evaluation set (also used by ``sorter eval-detector``)."""
    return SynthRecipe(n_images=n_images, seed=seed)


def _synthetic(recipe: SynthRecipe, spec: ModelSpec, cache_dir: Path, desc: str) -> PackedSet:
    size = f"{spec.input_w_px}x{spec.input_h_px}-p{spec.pad_value}-{RESIZE_NAME}"
    cache = cache_dir / f"synth-{recipe.key()}-{size}.npz"
    return cached_pack(SynthDataset(recipe, spec.class_names), spec, spec.class_names, cache, desc)


def run_job(opts: TrainOptions) -> dict[str, Any]:
    """Run the job; returns the metrics also written to ``out_dir/metrics.json``.

    The run is tracked (``run.json``, MLflow when on) from start to end; a failed run is closed as FAILED.
    """
    if not opts.export_only and not opts.resume and (opts.out_dir / CHECKPOINT).exists():
        raise ConfigError(f"'{opts.out_dir}' already holds a {CHECKPOINT}; pass --resume to continue it or choose a new --out")
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    trackers = open_trackers(opts.out_dir, opts.tracking, opts.experiment, opts.out_dir.name, opts.tracking_uri)  # type: ignore[arg-type]
    try:
        metrics = _run_job(opts, trackers)
    except BaseException:
        trackers.finish("FAILED")
        raise
    trackers.finish()
    return metrics


def _run_job(opts: TrainOptions, trackers: Trackers) -> dict[str, Any]:
    t_start = time.monotonic()
    c_start = time.process_time()
    spec = opts.spec
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    train_r, val_r, held_r = opts.recipes()
    overlap = scene_seeds(held_r) & (scene_seeds(train_r) | scene_seeds(val_r))
    if overlap:
        raise ConfigError(
            f"the held-out set shares simulator seeds {sorted(overlap)[:5]} with the training data; change --heldout-seed"
        )
    timings: dict[str, float] = {}

    t0 = time.monotonic()
    parts: list[PackedSet] = []
    real: list[PackedSet] = []
    manifest = read_manifest(opts.dataset) if opts.dataset is not None else None
    if opts.train_images > 0 and not opts.export_only:
        parts.append(_synthetic(train_r, spec, opts.cache_dir, "render train"))
    for ann, images in opts.coco if not opts.export_only else []:
        real.append(pack(CocoDataset(ann, images, spec.class_names), spec, spec.class_names, f"load {ann.name}"))
    if opts.dataset is not None and not opts.export_only:
        plant_set = CocoDataset(opts.dataset / "train.json", opts.dataset, spec.class_names)
        real.append(pack(plant_set, spec, spec.class_names, "load dataset"))
    parts += mix_real(real, sum(len(p) for p in parts), opts.real_share)
    val = _synthetic(val_r, spec, opts.cache_dir, "render val") if opts.val_images > 0 else None
    timings["data_s"] = round(time.monotonic() - t0, 1)
    trackers.log_params({"seed": opts.train.seed, "train": asdict(opts.train), "spec": json.loads(spec.to_json()),
                         "train_images": opts.train_images, "real_share": opts.real_share, "init": str(opts.init),
                         "dataset": str(opts.dataset), "coco": [str(a) for a, _ in opts.coco],
                         **({"ray": opts.ray.to_dict()} if opts.ray is not None else {})})
    trackers.set_tags({"sorter.command": opts.command, "sorter.dataset_hash": manifest["hash"] if manifest else "",
                       "sorter.code_version": code_version(),
                       "sorter.train_workers": str(opts.ray.workers if opts.ray is not None else 1)})

    trainer = Trainer(out, spec, opts.train, opts.init)
    if opts.export_only:
        if not trainer.resume():
            raise ConfigError(f"--export-only: no {CHECKPOINT} in '{out}'; train first or point --out at a finished run")
    else:
        if not parts:
            raise ConfigError("no training data: set --train-images > 0, or give --coco annotations or a --dataset")
        if opts.resume:
            trainer.resume()
        elif (out / CHECKPOINT).exists():
            raise ConfigError(f"'{out}' already holds a {CHECKPOINT}; pass --resume to continue it or choose a new --out")
        t0 = time.monotonic()

        def on_epoch(row: dict[str, Any]) -> None:
            trackers.log_metrics({k: float(v) for k, v in row.items() if k not in ("epoch", "step")}, int(row["epoch"]))

        if opts.ray is not None:
            fit_on_ray(trainer, concat(parts), val, opts.ray, opts.init, on_epoch)
        else:
            trainer.fit(concat(parts), val, progress=opts.progress, on_epoch=on_epoch)
        timings["train_s"] = round(time.monotonic() - t0, 1)

    t0 = time.monotonic()
    calib_src = val if val is not None and len(val) else parts[0] if parts else None
    if calib_src is None:
        raise ConfigError("--export-only needs validation images for INT8 calibration; set --val-images > 0")
    provenance = {
        "sorter.seed": str(opts.train.seed),
        "sorter.train_command": opts.command,
        "sorter.data_recipe": json.dumps({"train": train_r.to_dict(), "coco": [str(a) for a, _ in opts.coco]}, sort_keys=True),
        "sorter.dataset_hash": manifest["hash"] if manifest else "",
        "sorter.code_version": code_version(),
    }
    paths = export_variants(trainer.ema, out / MODEL_FILE, calib_src.images[: opts.calib_images], calib_src.images[0], provenance)
    timings["export_s"] = round(time.monotonic() - t0, 1)

    heldout: dict[str, Any] = {}
    if opts.heldout_images > 0:
        t0 = time.monotonic()
        heldout = evaluate_models(paths["fp32"], tuple(p for p in ("fp32", "fp16", "int8") if p in paths), held_r)
        timings["heldout_eval_s"] = round(time.monotonic() - t0, 1)
    plant: dict[str, Any] = {}
    if manifest is not None and manifest["counts"].get("test"):
        t0 = time.monotonic()
        plant = evaluate_dataset(paths["fp32"], opts.dataset, "test")  # type: ignore[arg-type]
        timings["plant_eval_s"] = round(time.monotonic() - t0, 1)
    timings["total_s"] = round(time.monotonic() - t_start, 1)
    timings["total_cpu_s"] = round(time.process_time() - c_start, 1)
    metrics = {
        "model": MODEL_FILE,
        "spec": json.loads(spec.to_json()),
        "seed": opts.train.seed,
        "command": opts.command,
        "train_config": json.loads(json.dumps(asdict(opts.train), default=str)),
        "data": {
            "train_recipe": train_r.to_dict() if opts.train_images > 0 else None,
            "val_recipe": val_r.to_dict() if opts.val_images > 0 else None,
            "heldout_recipe": held_r.to_dict() if opts.heldout_images > 0 else None,
            "coco": [[str(a), str(i) if i else None] for a, i in opts.coco],
            "train_images_total": int(sum(len(p) for p in parts)),
            "real_images": int(sum(len(p) for p in real)),
            "real_share": opts.real_share,
            "dataset": str(opts.dataset) if opts.dataset else None,
            "dataset_hash": manifest["hash"] if manifest else None,
        },
        "plant_test": plant,
        "ray": None if opts.ray is None else {**opts.ray.to_dict(),
                                              "threads_per_worker": opts.train.threads or opts.ray.cpus_per_worker},
        "code_version": code_version(),
        "history": trainer.history,
        "heldout": heldout,
        "files": {k: {"name": v.name, "bytes": v.stat().st_size} for k, v in paths.items()},
        "timings": timings,
        "environment": {
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
    }
    if heldout.get("fp32"):
        metrics["map50"] = heldout["fp32"]["map50"]
        metrics["map"] = heldout["fp32"]["map"]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    pairs = (("heldout_map50", metrics.get("map50")), ("heldout_map", metrics.get("map")))
    final = {k: float(v) for k, v in pairs if v is not None}
    if plant.get("map50", {}).get("value") is not None:
        final["plant_test_map50"] = float(plant["map50"]["value"])
    trackers.log_metrics(final, int(trainer.epoch))
    for name in ("metrics.json", "metrics.jsonl", MODEL_FILE):
        trackers.log_artifact(out / name)
    return metrics


def mix_real(real: list[PackedSet], n_rendered: int, share: float | None) -> list[PackedSet]:
    """The real sets, repeated so they make up about ``share`` of an epoch next to ``n_rendered`` rendered images."""
    n_real = sum(len(p) for p in real)
    if not real or share is None or n_rendered == 0 or n_real == 0:
        return real
    if not 0.0 < share < 1.0:
        raise ConfigError(f"--real-share {share}: expected a share between 0 and 1, e.g. 0.5")
    repeats = max(1, round(share * n_rendered / ((1.0 - share) * n_real)))
    log.info("real images repeated %d times: %d real next to %d rendered per epoch", repeats, repeats * n_real, n_rendered)
    return real * repeats


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    import subprocess

    from sorter import __version__

    root = Path(__file__).resolve().parents[2]
    try:
        cmd = ["git", "-C", str(root), "describe", "--always", "--dirty"]
        rev = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
        if rev.returncode == 0 and rev.stdout.strip():
            return f"{__version__}+{rev.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def evaluate_dataset(model: Path, dataset: Path, split: str, n_resamples: int = 1000, precision: str = "fp32") -> dict[str, Any]:
    """Honest evaluation of a model on a dataset split (bootstrap intervals, slices, calibration)."""
    from sorter.train.honest import evaluate_images
    from sorter.train.scoring import score_split

    images = score_split(model, dataset, split, precision=precision)
    return evaluate_images(images, MATERIAL_CLASSES, n_resamples=n_resamples)


def evaluate_models(
    base_model: Path, precisions: tuple[str, ...], recipe: SynthRecipe, min_score: float = 0.01
) -> dict[str, Any]:
    """Evaluate precision variants of a model with onnxruntime on a rendered set.

    The full run-time pipeline is scored: letterbox, network, mapping back to
    frame pixels. Every variant sees the same rendered frames (one pass).
    """
    from sorter.detect.onnxruntime_backend import create
    from sorter.train.evaluate import evaluate_many

    detectors = {
        p: create(DetectorConfig(type="onnxruntime", model=str(base_model), precision=p, min_score=min_score), MATERIAL_CLASSES)
        for p in precisions
    }
    fns = {p: (lambda img, d=d: d.detect(_frame(img))) for p, d in detectors.items()}
    try:
        result = evaluate_many(fns, SynthDataset(recipe, MATERIAL_CLASSES), MATERIAL_CLASSES, desc="held-out eval")
    finally:
        for d in detectors.values():
            d.close()
    for p, r in result.items():
        r["recipe"] = recipe.to_dict()
        log.info("held-out %s: mAP50 %.4f mAP %.4f", p, r["map50"], r["map"])
    return result


def _frame(image: ImageArray) -> Frame:
    return Frame(image=image, t_capture_ns=0, s_capture_mm=0.0, frame_index=0)
