"""Switch the running detector to another model without a gap: load, warm up, parity self-test, keep the previous one.

A new model is built and checked completely *before* it replaces the active one: it runs its golden input
(``<stem>.golden.json`` beside the model) a few times to warm up (allocations, kernel selection, engine
builds), and must reproduce the golden outputs of its precision (:mod:`sorter.detect.golden`). Anything that
fails leaves the active model running and says why. The previous model stays loaded, so rolling back is a
swap, not a reload. Pure of any runtime wiring: the caller owns the thread that calls it (never the hot loop
itself) and publishes ``active`` to the loop between frames.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.detect.golden import compare, load_golden
from sorter.detect.model_files import golden_path, read_model_info
from sorter.detect.preprocess import to_tensor
from sorter.errors import SorterError

log = logging.getLogger(__name__)


class ModelSwitchError(SorterError):
    """A model cannot replace the running one (unreadable, no golden file, parity self-test failed)."""


@dataclass
class LoadedModel:
    """A detector ready to serve, with how it was checked."""

    path: Path
    detector: Any
    precision: str
    warmup_ms: float
    parity_problems: list[str]


def base_model(path: Path) -> Path:
    """The FP32 file a variant belongs to (golden files are named after it)."""
    from sorter.detect.model_files import variant_path

    return variant_path(path, "fp32")


class ModelSwitcher:
    """Holds the active detector and the previous one.

    Args:
        build: ``path -> detector`` (an :class:`~sorter.detect.pipeline.EngineDetector`: it has ``engine.infer``).
        warmup_runs: golden inferences before the parity check.
        clock_ns: monotonic clock (injected for tests).
    """

    def __init__(
        self, build: Callable[[Path], Any], warmup_runs: int = 3, clock_ns: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self._build = build
        self._warmup = max(1, warmup_runs)
        self._clock = clock_ns
        self.active: LoadedModel | None = None
        self.previous: LoadedModel | None = None

    def load(self, path: Path) -> LoadedModel:
        """Build, warm up and parity-check a model (the active one is untouched).

        Raises:
            ModelSwitchError: the model cannot be read, has no golden file, or misses its golden outputs.
        """
        try:
            info = read_model_info(path)
            golden = load_golden(golden_path(base_model(path)))
        except FileNotFoundError as e:
            raise ModelSwitchError(
                f"model {path}: {e.filename} is missing; export the model with 'sorter train' (it writes the golden file)"
            ) from None
        except SorterError as e:
            raise ModelSwitchError(f"model {path}: {e}") from None
        if info.precision not in golden.outputs:
            raise ModelSwitchError(f"model {path}: its golden file has no {info.precision} outputs; re-export the model")
        detector = self._build(path)
        try:
            tensor = to_tensor(golden.canvas)
            t0 = self._clock()
            for _ in range(self._warmup):
                out = detector.engine.infer(tensor)
            warm_ms = (self._clock() - t0) / 1e6
            problems = compare(golden.outputs[info.precision], out, info.precision)
        except Exception:
            detector.close()
            raise
        if problems:
            detector.close()
            raise ModelSwitchError(
                f"model {path} fails its parity self-test ({len(problems)} differences, first: {problems[0]}); "
                "the running model stays"
            )
        return LoadedModel(path, detector, info.precision, warm_ms, problems)

    def switch(self, path: Path) -> LoadedModel:
        """Make ``path`` the active model (after :meth:`load` succeeded); the old active one becomes ``previous``."""
        loaded = self.load(path)
        if self.previous is not None:
            self.previous.detector.close()
        self.previous, self.active = self.active, loaded
        log.info("detector model switched to %s (%s, warm-up %.0f ms, parity ok)", path, loaded.precision, loaded.warmup_ms)
        return loaded

    def rollback(self) -> LoadedModel:
        """Swap back to the previous model (already loaded and checked).

        Raises:
            ModelSwitchError: when there is no previous model.
        """
        if self.previous is None:
            raise ModelSwitchError("no previous model is loaded; nothing to roll back to")
        self.active, self.previous = self.previous, self.active
        log.warning("detector model rolled back to %s", self.active.path)
        return self.active

    def close(self) -> None:
        """Release both models."""
        for m in (self.active, self.previous):
            if m is not None:
                m.detector.close()
        self.active = self.previous = None
