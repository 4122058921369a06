"""Data-parallel training on Ray: Ray Train's ``TorchTrainer`` runs :meth:`Trainer.fit` on N CPU workers.

The workers form a ``torch.distributed`` group (gloo) and share out every step's batch; DistributedDataParallel
averages the gradients (see :mod:`sorter.train.trainer`). The data is packed once by the caller and handed to the
workers through Ray's object store. Worker 0 writes ``checkpoint.pt`` and ``metrics.jsonl`` into the output folder,
as one process does, so the caller goes on exactly as after :meth:`Trainer.fit`: it reloads the checkpoint, then
exports, evaluates and tracks the run. The output folder (and ``--init``) must be readable and writable by the
workers: this machine's folder on a local instance, a shared folder on a cluster of several machines.

Ray Train is the optional ``ray`` extra; nothing imports it until ``sorter train --address`` asks for it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.errors import ConfigError, SorterError
from sorter.train.packed import PackedSet
from sorter.train.trainer import CHECKPOINT, TrainConfig, Trainer

log = logging.getLogger(__name__)

__all__ = ["RaySetup", "fit_on_ray"]


@dataclass(frozen=True)
class RaySetup:
    """Where and how wide to train.

    Attributes:
        address: ``local`` (start a Ray instance on this machine), ``auto`` or ``host:port`` of a head.
        workers: training workers (one torch process each).
        cpus_per_worker: CPUs Ray reserves for each worker; also its torch threads unless ``TrainConfig.threads``.
    """

    address: str
    workers: int = 2
    cpus_per_worker: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: give 1 or more training workers")
        if self.cpus_per_worker < 1:
            raise ConfigError(f"--cpus-per-worker {self.cpus_per_worker}: give 1 or more")

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "workers": self.workers, "cpus_per_worker": self.cpus_per_worker}


def _worker_loop(config: dict[str, Any]) -> None:
    """One training worker (Ray Train calls it in every worker, with the process group set up)."""
    import ray
    import ray.train

    from sorter.detect.spec import ModelSpec

    cfg: TrainConfig = config["train_config"]
    trainer = Trainer(Path(config["out_dir"]), ModelSpec.from_json(config["spec"]), cfg, config["init"])
    if config["resume"]:
        trainer.resume()
    train: PackedSet = ray.get(config["train"])
    val: PackedSet | None = ray.get(config["val"]) if config["val"] is not None else None
    trainer.fit(train, val, progress=False, distributed=True)
    last = trainer.history[-1] if trainer.history else {}
    ray.train.report({"epoch": trainer.epoch, "train_loss": float(last.get("train_loss", float("nan")))})


def _ray_train() -> tuple[Any, Any, Any, Any, Any]:
    from sorter.sweep.cluster import RayMissingError, import_ray

    ray = import_ray()
    try:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError as e:
        raise RayMissingError(
            f"Ray Train is not installed ({e}); install the extra: pip install -e '.[ray]' (or pip install 'ray[train]'), "
            "or train in one process: drop --address"
        ) from None
    return RunConfig, ScalingConfig, TorchConfig, TorchTrainer, ray


def fit_on_ray(
    trainer: Trainer,
    train: PackedSet,
    val: PackedSet | None,
    setup: RaySetup,
    init: Path | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``trainer``'s job on Ray workers; afterwards ``trainer`` holds worker 0's result, as after ``fit``.

    ``trainer`` is this process's trainer of the job (resumed already when the run continues); its configuration,
    model spec and output folder go to the workers. ``on_epoch`` receives each new epoch's row once training ends.
    Returns the history.
    """
    from sorter.sweep.cluster import connect

    RunConfig, ScalingConfig, TorchConfig, TorchTrainer, ray = _ray_train()
    cfg = trainer.cfg
    if cfg.batch_size % setup.workers:
        raise ConfigError(f"--batch-size {cfg.batch_size} does not split between {setup.workers} workers; "
                          f"give a multiple of {setup.workers}")
    if len(train) // cfg.batch_size < 1:
        raise ConfigError(f"{len(train)} training images make no batch of {cfg.batch_size}; lower --batch-size")
    first_epoch = trainer.epoch
    if first_epoch >= cfg.epochs:
        return trainer.history
    out_dir = trainer.out_dir.resolve()
    worker_cfg = TrainConfig(**{**cfg.__dict__, "threads": cfg.threads or setup.cpus_per_worker})
    started = connect(setup.address, setup.workers * setup.cpus_per_worker if setup.address == "local" else None)
    storage = Path(tempfile.mkdtemp(prefix="sorter-ray-train-"))
    t0 = time.monotonic()
    try:
        need, have = setup.workers * setup.cpus_per_worker, float(ray.cluster_resources().get("CPU", 0.0))
        if have < need:
            raise SorterError(f"the Ray cluster at '{setup.address}' has {have:g} CPUs; {setup.workers} workers of "
                              f"{setup.cpus_per_worker} CPU need {need}: lower --workers or --cpus-per-worker")
        config = {
            "train_config": worker_cfg,
            "spec": trainer.spec.to_json(),
            "out_dir": str(out_dir),
            "init": init.resolve() if init is not None else None,
            "resume": first_epoch > 0,
            "train": ray.put(train),
            "val": ray.put(val) if val is not None and len(val) else None,
        }
        job = TorchTrainer(
            _worker_loop,
            train_loop_config=config,
            scaling_config=ScalingConfig(num_workers=setup.workers, use_gpu=False,
                                         resources_per_worker={"CPU": setup.cpus_per_worker}),
            torch_config=TorchConfig(backend="gloo"),
            run_config=RunConfig(name=f"sorter-train-{out_dir.name}", storage_path=str(storage)),
        )
        try:
            result = job.fit()
        except Exception as e:  # a worker raised or died: Ray wraps the cause
            raise SorterError(f"training on Ray ({setup.address}, {setup.workers} workers) failed: {_cause(e)}") from None
        if getattr(result, "error", None) is not None:
            raise SorterError(f"training on Ray ({setup.address}, {setup.workers} workers) failed: {_cause(result.error)}")
    finally:
        if started:
            ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
    log.info("trained on Ray (%s, %d workers) in %.1f s", setup.address, setup.workers, time.monotonic() - t0)
    if not trainer.resume() or trainer.epoch <= first_epoch:
        raise SorterError(
            f"the Ray workers' {CHECKPOINT} did not reach '{out_dir}': on a cluster of several machines, give --out a "
            "folder every worker shares"
        )
    for row in trainer.history[first_epoch:]:
        if on_epoch is not None:
            on_epoch(row)
    return trainer.history


def _cause(e: BaseException) -> str:
    """The innermost error Ray wrapped, in one line."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[-1] if text else ''}"
