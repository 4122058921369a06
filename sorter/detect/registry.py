"""Explicit registry of detector backends, keyed by ``detector.type``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sorter.detect.base import Detector
from sorter.detect.oracle import OracleDetector
from sorter.errors import ConfigError

if TYPE_CHECKING:
    from sorter.config import Config

#: detector.type -> module providing ``create(cfg: DetectorConfig, class_names) -> Detector``
LEARNED_BACKENDS: dict[str, str] = {
    "onnxruntime": "sorter.detect.onnxruntime_backend",
    "tensorrt": "sorter.detect.tensorrt_backend",
    "torch": "sorter.detect.torch_backend",
}


def create_detector(cfg: Config, class_names: tuple[str, ...]) -> Detector:
    """Build the configured detector backend."""
    d = cfg.detector
    if d.type == "oracle":
        if cfg.camera.type != "sim":
            raise ConfigError(
                f"detector.type = 'oracle' needs the simulated camera, but camera.type = {cfg.camera.type!r}; "
                f"use one of {', '.join(LEARNED_BACKENDS)}"
            )
        o = d.oracle
        return OracleDetector(
            class_names,
            miss_rate=o.miss_rate,
            class_confusion=o.class_confusion,
            false_positives_per_frame=o.false_positives_per_frame,
            box_jitter_px=o.box_jitter_px,
            min_visible_fraction=o.min_visible_fraction,
            seed=o.seed,
            image_size_px=(cfg.camera.width_px, cfg.camera.height_px),
        )
    if d.type not in LEARNED_BACKENDS:
        raise ConfigError(f"detector.type = {d.type!r} is unknown; valid: oracle, {', '.join(LEARNED_BACKENDS)}")
    module = importlib.import_module(LEARNED_BACKENDS[d.type])
    det: Detector = module.create(d, class_names)
    return det
