"""On-disk cache of built TensorRT engines, keyed by everything that makes an engine valid.

Key: ONNX file hash + TensorRT version + GPU name + compute capability +
precision + input shape. A JSON manifest (``manifest.json``) lists every
entry; engine files and the manifest are written atomically (temporary file,
fsync, rename) and every read-modify-write holds an exclusive ``flock`` on
``.lock``, so two processes provisioning the same box build an engine once.
No TensorRT import here: the builder is passed in as a function.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/sorter/engines`` (``~/.cache/sorter/engines``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sorter" / "engines"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on.

    Attributes:
        onnx_sha256: hash of the ONNX file's bytes.
        trt_version: TensorRT version string.
        gpu_name: GPU product name.
        compute_capability: ``"major.minor"``.
        precision: ``fp32``, ``fp16`` or ``int8`` (baked into the ONNX).
        input_shape: static input shape, e.g. ``(1, 3, 192, 320)``.
    """

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_shape: tuple[int, ...]

    def digest(self) -> str:
        """Short stable hash of the key (file names, manifest keys)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def file_name(self) -> str:
        """Engine file name: readable prefix + digest."""
        gpu = "".join(c if c.isalnum() else "-" for c in self.gpu_name)[:32]
        trt, cc = self.trt_version, self.compute_capability
        return f"{self.onnx_sha256[:12]}-{self.precision}-trt{trt}-{gpu}-sm{cc}-{self.digest()}.engine"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class EngineCache:
    """A folder of engines plus its manifest.

    Args:
        root: cache folder (created on demand).
        now_utc: timestamp source for the manifest (injectable for tests).
    """

    def __init__(self, root: Path, now_utc: Callable[[], str] = _utc_now) -> None:
        self.root = Path(root)
        self._now_utc = now_utc

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the cache's exclusive inter-process lock."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def manifest(self) -> dict[str, Any]:
        """The manifest (an empty one when missing or unreadable)."""
        try:
            data: dict[str, Any] = json.loads((self.root / MANIFEST).read_text(encoding="utf-8"))
            if data.get("version") == MANIFEST_VERSION and isinstance(data.get("entries"), dict):
                return data
            log.warning("engine cache manifest %s has an unknown format; starting a new one", self.root / MANIFEST)
        except FileNotFoundError:
            pass
        except (OSError, json.JSONDecodeError) as e:
            log.warning("engine cache manifest %s is unreadable (%s); starting a new one", self.root / MANIFEST, e)
        return {"version": MANIFEST_VERSION, "entries": {}}

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        _atomic_write(self.root / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())

    def _read_valid(self, key: EngineKey, manifest: dict[str, Any]) -> bytes | None:
        entry = manifest["entries"].get(key.digest())
        if entry is None:
            return None
        path = self.root / entry["file"]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            log.warning("engine %s listed in the manifest is missing; rebuilding", path)
            return None
        if hashlib.sha256(data).hexdigest() != entry.get("engine_sha256"):
            log.warning("engine %s does not match its manifest hash (corrupt or replaced); rebuilding", path)
            return None
        return bytes(data)

    def load(self, key: EngineKey) -> bytes | None:
        """The cached engine for ``key``, or None."""
        with self.locked():
            return self._read_valid(key, self.manifest())

    def get_or_build(self, key: EngineKey, build: Callable[[], bytes], force: bool = False) -> tuple[bytes, bool]:
        """The engine for ``key``, building and storing it when absent (or when ``force``).

        The lock is held while building so concurrent callers wait for one build.

        Returns:
            ``(engine bytes, True if it came from the cache)``.
        """
        with self.locked():
            manifest = self.manifest()
            if not force:
                data = self._read_valid(key, manifest)
                if data is not None:
                    return data, True
            log.info("building TensorRT engine %s (this can take minutes)", key.file_name())
            t0 = time.monotonic()
            data = build()
            build_s = time.monotonic() - t0
            _atomic_write(self.root / key.file_name(), data)
            manifest["entries"][key.digest()] = {
                **asdict(key),
                "input_shape": list(key.input_shape),
                "file": key.file_name(),
                "bytes": len(data),
                "engine_sha256": hashlib.sha256(data).hexdigest(),
                "built_utc": self._now_utc(),
                "build_s": round(build_s, 2),
            }
            self._write_manifest(manifest)
            return data, False

    def invalidate(self, key: EngineKey) -> None:
        """Forget and delete the engine of ``key`` (e.g. after a failed parity self-test)."""
        with self.locked():
            manifest = self.manifest()
            entry = manifest["entries"].pop(key.digest(), None)
            if entry is not None:
                (self.root / entry["file"]).unlink(missing_ok=True)
                self._write_manifest(manifest)
