"""TensorRT engine cache: keys, manifest, atomic files, corruption and a real inter-process lock."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

from sorter.detect.engine_cache import EngineCache, EngineKey


def _key(**kw: object) -> EngineKey:
    base: dict[str, object] = {
        "onnx_sha256": "ab" * 32,
        "trt_version": "10.3.0",
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "compute_capability": "9.0",
        "precision": "fp16",
        "input_shape": (1, 3, 192, 320),
    }
    base.update(kw)
    return EngineKey(**base)  # type: ignore[arg-type]


def test_every_key_field_changes_the_digest() -> None:
    k = _key()
    variants = [
        _key(onnx_sha256="cd" * 32),
        _key(trt_version="8.6.1"),
        _key(gpu_name="Orin"),
        _key(compute_capability="8.7"),
        _key(precision="int8"),
        _key(input_shape=(1, 3, 224, 384)),
    ]
    digests = {k.digest(), *(v.digest() for v in variants)}
    assert len(digests) == 7
    assert k.digest() == _key().digest()
    assert k.file_name().endswith(".engine") and "fp16" in k.file_name() and "sm9.0" in k.file_name()


def test_build_once_then_hit_with_manifest(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path, now_utc=lambda: "2024-01-01T00:00:00+00:00")
    calls: list[int] = []

    def build() -> bytes:
        calls.append(1)
        return b"engine-bytes"

    data, hit = cache.get_or_build(_key(), build)
    assert (data, hit) == (b"engine-bytes", False)
    data, hit = cache.get_or_build(_key(), build)
    assert (data, hit) == (b"engine-bytes", True)
    assert len(calls) == 1
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = manifest["entries"][_key().digest()]
    assert entry["precision"] == "fp16" and entry["gpu_name"] == "NVIDIA H100 80GB HBM3"
    assert entry["input_shape"] == [1, 3, 192, 320]
    assert entry["built_utc"] == "2024-01-01T00:00:00+00:00"
    assert (tmp_path / entry["file"]).read_bytes() == b"engine-bytes"
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_corrupt_or_missing_engine_is_rebuilt(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    cache.get_or_build(_key(), lambda: b"v1")
    entry = json.loads((tmp_path / "manifest.json").read_text())["entries"][_key().digest()]
    (tmp_path / entry["file"]).write_bytes(b"garbage")
    data, hit = cache.get_or_build(_key(), lambda: b"v2")
    assert (data, hit) == (b"v2", False)
    (tmp_path / entry["file"]).unlink()
    assert cache.load(_key()) is None
    assert cache.get_or_build(_key(), lambda: b"v3") == (b"v3", False)


def test_unreadable_manifest_starts_fresh_and_invalidate_removes(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    cache = EngineCache(tmp_path)
    assert cache.get_or_build(_key(), lambda: b"x") == (b"x", False)
    cache.invalidate(_key())
    assert cache.load(_key()) is None
    assert not list(tmp_path.glob("*.engine"))


def test_force_rebuilds(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    cache.get_or_build(_key(), lambda: b"old")
    assert cache.get_or_build(_key(), lambda: b"new", force=True) == (b"new", False)
    assert cache.load(_key()) == b"new"


def _worker(root: str, counter: str, q: mp.Queue[tuple[bytes, bool]]) -> None:
    def build() -> bytes:
        with open(counter, "a") as f:
            f.write("build\n")
        time.sleep(0.3)  # a slow build: the other process must wait for it, not build too
        return b"shared-engine"

    q.put(EngineCache(Path(root)).get_or_build(_key(), build))


def test_two_processes_build_the_engine_once(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    q: mp.Queue[tuple[bytes, bool]] = ctx.Queue()
    counter = tmp_path / "builds.txt"
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "cache"), str(counter), q)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert counter.read_text().count("build") == 1
    assert sorted(hit for _, hit in results) == [False, True]
    assert all(data == b"shared-engine" for data, _ in results)
