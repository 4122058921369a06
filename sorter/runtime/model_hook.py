"""Switch the running line's detector model on a reload, and roll it back, without stopping the line.

On ``systemctl reload`` (or ``POST /reload``) the service asks :meth:`ModelReloader.prepare`
whether ``detector.model`` names another model than the one running, judged by the
file's SHA-256 (not its path: a registry that replaces the file behind a fixed path is
a new model; the same file under another name is not). A new model is built, warmed
up and parity-checked by :class:`~sorter.detect.switch.ModelSwitcher` on the reload's
own thread; a model that fails refuses the reload with the reason and the running one
keeps going. A model that passes is handed to the main loop, which swaps it in
between two frames (:meth:`swap_if_pending`). ``POST /rollback`` swaps the previous
model back (still loaded, so immediately).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sorter.errors import SorterError

if TYPE_CHECKING:
    from sorter.config import Config
    from sorter.detect.switch import LoadedModel
    from sorter.runtime.line import Line

log = logging.getLogger(__name__)

#: detector types whose models the switcher can load (an engine behind the shared EngineDetector)
SWITCHABLE = ("onnxruntime", "tensorrt", "torch")


def model_file(cfg: Config) -> Path:
    """The file a backend loads for ``detector.model`` and ``detector.precision`` (raises ConfigError when missing)."""
    from sorter.detect.model_files import resolve_model

    return resolve_model(cfg.detector.model, cfg.detector.precision)


class ModelReloader:
    """The running line's models: the active one, the previous one (for rollback), and a swap waiting for the loop.

    Args:
        line: the running line (its detector is the active model at start).
        cfg: the config the line was built with.
        warmup_runs: golden inferences before the parity check.
    """

    def __init__(self, line: Line, cfg: Config, warmup_runs: int = 3) -> None:
        from sorter.detect.model_files import file_sha256
        from sorter.detect.switch import LoadedModel, ModelSwitcher

        self._line = line
        self._build_cfg = cfg
        self.switcher = ModelSwitcher(self._build, warmup_runs=warmup_runs)
        path = model_file(cfg)
        self.switcher.active = LoadedModel(path, line.detector, cfg.detector.precision, 0.0, [])
        self._sha: dict[int, str] = {id(line.detector): file_sha256(path)}
        self._lock = threading.Lock()
        self._busy = threading.Lock()  # one switch or rollback at a time
        self._pending: Any = None  # a detector the loop has not swapped in yet
        self.switches = 0
        self.rollbacks = 0

    def _build(self, path: Path) -> Any:
        from sorter.detect.registry import create_detector
        from sorter.entities import MATERIAL_CLASSES
        from sorter.runtime.plant import detector_roi

        cfg = self._build_cfg
        det_cfg = cfg.detector.model_copy(update={"model": str(path)})
        roi = detector_roi(cfg, self._line.camera)
        return create_detector(cfg.model_copy(update={"detector": det_cfg}), MATERIAL_CLASSES, roi)

    def _active_sha(self) -> str:
        active = self.switcher.active
        return "" if active is None else self._sha.get(id(active.detector), "")

    def wanted(self, cfg: Config) -> tuple[Path, str] | None:
        """``(file, sha256)`` of the model ``cfg`` names when it differs from the active one, else None.

        Raises:
            SorterError: the file does not exist (a ConfigError saying how to fix it).
        """
        from sorter.detect.model_files import file_sha256

        path = model_file(cfg)
        try:
            sha = file_sha256(path)
        except OSError as e:
            raise SorterError(f"detector.model: cannot read '{path}': {e.strerror}") from None
        return None if sha == self._active_sha() else (path, sha)

    def prepare(self, cfg: Config) -> str | None:
        """On the reload's thread: build, warm up and check the model ``cfg`` names, and queue it for the loop.

        Returns:
            None when ``cfg`` names the running model; else what will run, in words.

        Raises:
            SorterError: the model cannot replace the running one (``ModelSwitchError`` with the parity result, or a
                missing or unreadable file); nothing changed.
        """
        target = self.wanted(cfg)
        if target is None:
            return None
        path, sha = target
        if not self._busy.acquire(blocking=False):
            raise SorterError("another model switch is in progress; reload again when it is done")
        try:
            with self._lock:
                if self._pending is not None:
                    raise SorterError("the previous model switch has not reached the loop yet; reload again in a moment")
            self._build_cfg = cfg
            loaded = self.switcher.switch(path)
            self._sha[id(loaded.detector)] = sha
            with self._lock:
                self._pending = loaded.detector
            self.switches += 1
        finally:
            self._busy.release()
        return (f"detector model {path} (sha256 {sha[:12]}, {loaded.precision}, warm-up {loaded.warmup_ms:.0f} ms, "
                "parity self-test passed)")

    def rollback(self) -> str:
        """Swap the previous model back in (queued for the loop like a switch).

        Raises:
            SorterError: no previous model (``ModelSwitchError``), or a switch is in progress.
        """
        if not self._busy.acquire(blocking=False):
            raise SorterError("a model switch is in progress; roll back when it is done")
        try:
            loaded = self.switcher.rollback()
            with self._lock:
                self._pending = loaded.detector
            self.rollbacks += 1
        finally:
            self._busy.release()
        return f"detector model rolled back to {loaded.path} (sha256 {self._sha.get(id(loaded.detector), '?')[:12]})"

    @property
    def pending(self) -> bool:
        """True while a new model waits for the loop."""
        with self._lock:
            return self._pending is not None

    def swap_if_pending(self, line: Line) -> bool:
        """Main loop, between frames: make a queued model the line's detector. Returns True when it swapped."""
        with self._lock:
            new, self._pending = self._pending, None
        if new is None or new is line.detector:
            return False
        floor = getattr(line.detector, "min_score", None)
        if floor is not None and hasattr(new, "min_score"):
            new.min_score = floor  # the threshold the detector reports down to (lowered while frames are collected)
        line.detector = new
        line.pipeline.detector = new
        log.warning("detector model now running: %s", self.describe().get("active"))
        return True

    def describe(self) -> dict[str, Any]:
        """What ``/status`` shows: the active and the previous model (file and SHA-256 prefix), switches, rollbacks."""

        def one(m: LoadedModel | None) -> dict[str, Any] | None:
            if m is None:
                return None
            return {"path": str(m.path), "sha256": self._sha.get(id(m.detector), "")[:12], "precision": m.precision}

        return {"active": one(self.switcher.active), "previous": one(self.switcher.previous),
                "switches": self.switches, "rollbacks": self.rollbacks, "pending": self.pending}

    def close(self) -> None:
        """Release the models the line does not own (the line closes its running detector itself)."""
        with self._lock:
            self._pending = None
        for m in (self.switcher.active, self.switcher.previous):
            if m is not None and m.detector is not self._line.detector:
                m.detector.close()
        self.switcher.active = self.switcher.previous = None
