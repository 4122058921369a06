"""The training loop: seeded, resumable, logging metrics per epoch, exporting every model variant.

Files in the output folder:

* ``checkpoint.pt``: network (with BatchNorm), EMA weights, optimiser, epoch (resume point);
* ``metrics.jsonl``: one JSON line per epoch (losses, learning rate, time, validation mAP);
* ``model.onnx`` (+ ``model.fp16.onnx``, ``model.int8.onnx``, ``model.golden.json``) from the EMA weights;
* ``metrics.json``: final summary, written by the command after evaluation.

Reproducibility: every random choice derives from ``seed`` (initial weights,
epoch order, per-image augmentation ``(seed, epoch, index)``); with the same
data, thread count and torch build a run is repeatable, and a resumed run
continues exactly where it stopped.

Data parallel (``fit(distributed=True)`` in every process of a ``torch.distributed`` group, as Ray Train starts
them): each step's batch of ``batch_size`` images is split between the workers (worker ``r`` of ``n`` takes images
``r, r + n, ...`` of it, the split ``DistributedSampler`` makes of the epoch's order), DistributedDataParallel
averages the gradients, and worker 0 alone validates and writes the files. Steps, learning rates and augmentation
are those of one process; one worker gives one process's run.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sorter.detect.net import CenterNet, build_fused, count_parameters
from sorter.detect.spec import ModelSpec
from sorter.errors import ConfigError
from sorter.train.augment import AugmentConfig
from sorter.train.batches import make_batch
from sorter.train.evaluate import coco_map
from sorter.train.loss import detection_loss
from sorter.train.packed import PackedSet
from sorter.train.progress import Progress

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
METRICS_LOG = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Hyper-parameters of one run.

    Attributes:
        seed: seed of everything random.
        epochs: passes over the training set.
        batch_size: images per step.
        lr: peak AdamW learning rate (cosine decay to 5 % after a linear warm-up).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        ema_decay: decay of the exponential moving average of the weights (exported).
        val_every: validate every N epochs (and at the last).
        threads: torch intra-op threads (None: torch's default).
        augment: augmentation strengths.
        time_budget_s: stop after the epoch that crosses this wall time (None: no limit).
        bf16: run forward/backward under bfloat16 autocast (FP32 master weights and loss); None: where the CPU
            has native bfloat16 (AVX512-BF16/AMX), where it doubles the speed of a step.
        edge_loss_weight: weight of the edge L1 term of the box loss (``sorter.train.loss.edge_l1_loss``); 0: GIoU
            alone, the loss of the shipped model's first training.
    """

    seed: int = 0
    epochs: int = 21
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 150
    ema_decay: float = 0.995
    val_every: int = 4
    threads: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    time_budget_s: float | None = None
    bf16: bool | None = None
    edge_loss_weight: float = 0.0


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bfloat16 natively on this CPU."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        mkldnn_ok = bool(torch.backends.mkldnn.is_available())  # type: ignore[no-untyped-call]
        return mkldnn_ok and check is not None and bool(check())
    except RuntimeError:
        return False


def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, p))))


@torch.no_grad()
def _ema_update(ema: CenterNet, net: CenterNet, decay: float) -> None:
    for e, p in zip(ema.state_dict().values(), net.state_dict().values(), strict=True):
        if e.dtype.is_floating_point:
            e.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
        else:
            e.copy_(p)


@torch.no_grad()
def validate(net: CenterNet, data: PackedSet, batch_size: int = 16) -> dict[str, Any]:
    """mAP of ``net`` on a packed set, in network-input pixels (quick check during training)."""
    from sorter.train.coco import detections_to_coco

    net.eval()
    spec = net.spec
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for start in range(0, len(data), batch_size):
        idx = range(start, min(len(data), start + batch_size))
        x = torch.from_numpy(np.stack([data.images[i] for i in idx]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
        boxes, scores, classes = (t.numpy() for t in net(x))
        for k, i in enumerate(idx):
            keep = scores[k] >= 0.01
            results.extend(detections_to_coco(i + 1, boxes[k][keep], scores[k][keep], classes[k][keep]))
            images.append({"id": i + 1, "width": spec.input_w_px, "height": spec.input_h_px})
            b, c, ig = data.annotations(i)
            for bb, cc, gg in zip(b, c, ig, strict=True):
                w, h = float(bb[2] - bb[0]), float(bb[3] - bb[1])
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": i + 1,
                        "category_id": int(cc) + 1,
                        "bbox": [float(bb[0]), float(bb[1]), w, h],
                        "area": w * h,
                        "iscrowd": int(gg),
                    }
                )
    gt = {"images": images, "annotations": anns, "categories": [{"id": k + 1, "name": n} for k, n in enumerate(spec.class_names)]}
    return coco_map(gt, results, spec.class_names)


class _RawMaps(torch.nn.Module):
    """``forward`` gives the raw maps: DistributedDataParallel syncs gradients of what goes through ``forward``."""

    def __init__(self, net: CenterNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.forward_raw(x)


def _worker_group(batch_size: int) -> tuple[int, int]:
    """This worker's rank and the number of workers of the ``torch.distributed`` group, checked against the batch."""
    import torch.distributed as dist

    if not dist.is_initialized():
        raise ConfigError("distributed training needs a torch.distributed process group (sorter train --address)")
    rank, world = dist.get_rank(), dist.get_world_size()
    if batch_size % world:
        raise ConfigError(f"--batch-size {batch_size} does not split between {world} workers; "
                          f"give a multiple of {world} (each step's batch is shared out)")
    return rank, world


def _load_init(path: Path, spec: ModelSpec) -> CenterNet:
    """Initial weights for fine-tuning: a ``checkpoint.pt`` (with BatchNorm, or folded where that run started from an
    ONNX file) or a sorter ONNX file (BatchNorm folded)."""
    if path.suffix == ".onnx":
        from sorter.detect.onnx_weights import load_fused_from_onnx

        net = load_fused_from_onnx(path)
    else:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        init_spec = ModelSpec.from_json(ck["spec"])
        state = ck["ema"]
        # a run that was itself fine-tuned from an ONNX file trains the deployed layout (BatchNorm folded)
        folded = not any(k.endswith(".bn.weight") for k in state)
        net = build_fused(init_spec) if folded else CenterNet(init_spec)
        net.load_state_dict(state)
    if net.spec != spec:
        raise ConfigError(
            f"--init {path}: its model spec {net.spec} differs from the requested one {spec}; drop the size/width options"
        )
    return net


class Trainer:
    """Trains one network into ``out_dir``; see the module docstring for the files."""

    def __init__(self, out_dir: Path, spec: ModelSpec, cfg: TrainConfig, init: Path | None = None) -> None:
        self.out_dir = out_dir
        self.spec = spec
        self.cfg = cfg
        out_dir.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        if cfg.bf16 is None:
            cfg.bf16 = cpu_has_bf16()
        self.net = _load_init(init, spec) if init is not None else CenterNet(spec)
        self.net = self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.ema = copy.deepcopy(self.net).eval()
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.epoch = 0  # epochs completed
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.wall_s = 0.0

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path:
        """Write the resume checkpoint (atomic)."""
        path = self.out_dir / CHECKPOINT
        tmp = path.with_suffix(".tmp")
        torch.save(
            {
                "spec": self.spec.to_json(),
                "config": json.loads(json.dumps(asdict(self.cfg), default=str)),
                "model": self.net.state_dict(),
                "ema": self.ema.state_dict(),
                "opt": self.opt.state_dict(),
                "epoch": self.epoch,
                "step": self.step,
                "history": self.history,
                "wall_s": self.wall_s,
            },
            tmp,
        )
        tmp.replace(path)
        return path

    def resume(self) -> bool:
        """Load ``checkpoint.pt`` from the output folder if present; returns True when resumed."""
        path = self.out_dir / CHECKPOINT
        if not path.exists():
            return False
        ck = torch.load(path, map_location="cpu", weights_only=False)
        if ModelSpec.from_json(ck["spec"]) != self.spec:
            raise ConfigError(f"cannot resume from '{path}': it was trained with another model spec; use a new --out folder")
        if int(ck["config"]["seed"]) != self.cfg.seed:
            raise ConfigError(f"cannot resume from '{path}': it used seed {ck['config']['seed']}, not {self.cfg.seed}")
        self.net.load_state_dict(ck["model"])
        self.ema.load_state_dict(ck["ema"])
        self.opt.load_state_dict(ck["opt"])
        self.epoch = int(ck["epoch"])
        self.step = int(ck["step"])
        self.history = list(ck["history"])
        self.wall_s = float(ck.get("wall_s", 0.0))
        log.info("resumed from %s after epoch %d", path, self.epoch)
        return True

    # ------------------------------------------------------------------ loop
    def fit(
        self,
        train: PackedSet,
        val: PackedSet | None = None,
        progress: bool = True,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        distributed: bool = False,
    ) -> list[dict[str, Any]]:
        """Train until ``cfg.epochs`` (or the time budget); returns the per-epoch history.

        ``on_epoch`` receives each epoch's row (losses, learning rate, validation mAP, times) after it is logged.
        ``distributed``: this process is one worker of a data-parallel run (see the module docstring); the losses
        in the history are the mean over the workers, and only worker 0 validates, logs and saves.
        """
        cfg, spec = self.cfg, self.spec
        rank, world = _worker_group(cfg.batch_size) if distributed else (0, 1)
        forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = self.net.forward_raw
        if distributed:
            from torch.nn.parallel import DistributedDataParallel

            forward = DistributedDataParallel(_RawMaps(self.net))
        if len(train) == 0:
            raise ConfigError("the training set is empty; render more images or point --coco at annotated frames")
        steps_per_epoch = max(1, len(train) // cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        log.info("training %d parameters on %d images, %d steps/epoch", count_parameters(self.net), len(train), steps_per_epoch)
        while self.epoch < cfg.epochs:
            t0 = time.monotonic()
            c0 = time.process_time()
            e = self.epoch
            order = np.random.default_rng((cfg.seed, e, 7)).permutation(len(train))
            self.net.train()
            sums: dict[str, float] = {"loss": 0.0, "heat": 0.0, "box": 0.0, "edge": 0.0}
            with Progress(steps_per_epoch, f"epoch {e + 1}/{cfg.epochs}", enabled=progress) as bar:
                for k in range(steps_per_epoch):
                    mine = order[k * cfg.batch_size : (k + 1) * cfg.batch_size][rank::world]
                    batch = make_batch(train, mine.tolist(), spec, cfg.augment, cfg.seed, e)
                    lr = _lr_at(self.step, total, cfg)
                    for g in self.opt.param_groups:
                        g["lr"] = lr
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(cfg.bf16)):
                        heat, dist = forward(batch["images"])
                    loss, parts = detection_loss(heat.float(), dist.float(), batch, spec, cfg.edge_loss_weight)
                    self.opt.zero_grad(set_to_none=True)
                    loss.backward()  # type: ignore[no-untyped-call]
                    torch.nn.utils.clip_grad_norm_(self.net.parameters(), 10.0)
                    self.opt.step()
                    decay = min(cfg.ema_decay, (1.0 + self.step) / (10.0 + self.step))
                    _ema_update(self.ema, self.net, decay)
                    self.step += 1
                    sums["loss"] += float(loss.detach())
                    sums["heat"] += parts["heat"]
                    sums["box"] += parts["box"]
                    sums["edge"] += parts["edge"]
                    bar.update(1, loss=sums["loss"] / (k + 1))
            self.epoch += 1
            if world > 1:
                sums = _mean_over_workers(sums)
            row: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "lr": lr}
            row.update({f"train_{n}": v / steps_per_epoch for n, v in sums.items()})
            due = self.epoch % cfg.val_every == 0 or self.epoch == cfg.epochs
            if rank == 0 and val is not None and len(val) and due:
                m = validate(self.ema, val)
                row["val_map50"], row["val_map"] = m["map50"], m["map"]
            dt = time.monotonic() - t0
            self.wall_s += dt
            row["epoch_s"] = round(dt, 2)
            row["epoch_cpu_s"] = round(time.process_time() - c0, 2)  # all threads: ~2x wall on 2 idle cores
            row["wall_s"] = round(self.wall_s, 2)
            self.history.append(row)
            if rank == 0:
                with (self.out_dir / METRICS_LOG).open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                log.info("epoch %s", row)
                self.save()
                if on_epoch is not None:
                    on_epoch(row)
            over = cfg.time_budget_s is not None and self.wall_s >= cfg.time_budget_s and self.epoch < cfg.epochs
            if world > 1:
                over = _decided_by_worker_0(over)
            if over:
                log.warning(
                    "time budget of %.0f s reached after epoch %d of %d; stopping", cfg.time_budget_s, self.epoch, cfg.epochs
                )
                break
        return self.history


def _mean_over_workers(sums: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the workers of the process group."""
    import torch.distributed as dist

    t = torch.tensor(list(sums.values()), dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / dist.get_world_size() for k, v in zip(sums, t.tolist(), strict=True)}


def _decided_by_worker_0(flag: bool) -> bool:
    """Worker 0's ``flag`` on every worker (each one's clock differs; they must stop after the same epoch)."""
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0])
    dist.broadcast(t, 0)
    return bool(t.item() > 0.5)
