"""Registry of detector backends, keyed by ``detector.type``: built-ins below, plugins through entry points.

Every factory has the signature ``(cfg: Config, class_names) -> Detector`` and is imported only when its type
is used, so ``sorter --help`` and an ONNX Runtime line never import torch or TensorRT.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sorter.detect.base import Detector
from sorter.plugins import check_built, load, resolve

if TYPE_CHECKING:
    from sorter.config import Config
    from sorter.detect.roi import Roi

log = logging.getLogger(__name__)

#: detector.type -> ``module:function`` of its factory
DETECTORS: dict[str, str] = {
    "oracle": "sorter.detect.oracle:create",
    "onnxruntime": "sorter.detect.onnxruntime_backend:from_config",
    "tensorrt": "sorter.detect.tensorrt_backend:from_config",
    "torch": "sorter.detect.torch_backend:from_config",
}


def create_detector(cfg: Config, class_names: tuple[str, ...], roi: Roi | None = None) -> Detector:
    """Build the configured detector backend.

    Args:
        cfg: the configuration (``detector.*``).
        class_names: the line's class names in class-id order.
        roi: the region of each frame to look at (``sorter.runtime.plant.detector_roi``); None: the whole frame.
            The network backends crop to it; a detector that does not read pixels (the oracle) or a plugin
            ignores it.

    Raises:
        ConfigError: unknown type, a backend that cannot work with this line, or a plugin that does not fit.
    """
    ref = resolve("detector", cfg.detector.type, DETECTORS, "detector.type")
    detector = load(ref)(cfg, class_names)
    check_built(ref, detector, Detector)
    from sorter.detect.pipeline import EngineDetector

    if isinstance(detector, EngineDetector):  # one inference on a blank frame, checked: never fail on the first frame
        from sorter.detect.model_check import verify_detector

        try:
            verify_detector(detector, cfg.detector.model or "the packaged model")
        except BaseException:
            detector.close()
            raise
        detector.set_roi(roi)  # after the blank-frame check, which runs at the network's input size
    elif roi is not None and not roi.is_full:
        log.info("detector.type %r does not crop to the region %s", cfg.detector.type, roi.describe())
    return detector  # type: ignore[no-any-return]
