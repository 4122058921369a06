#!/usr/bin/env python3
"""Detector latency per backend and precision: preprocess / inference / postprocess p50 and p99 at batch 1.

Frames are rendered 1280x720 simulator frames (cycled), so preprocessing
includes the real letterbox resize. Rows whose backend is unavailable (no
CUDA, no TensorRT, no torch) are listed as skipped with the reason. Prints a
table and writes JSON (``--json``).

    .venv/bin/python scripts/bench_detector.py --iterations 300 --threads 2 --json runs/bench_detector.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sorter.config import DetectorConfig
from sorter.detect.model_files import read_model_info, resolve_model
from sorter.detect.pipeline import EngineDetector
from sorter.entities import MATERIAL_CLASSES, ImageArray


@dataclass
class Row:
    backend: str
    device: str
    precision: str
    note: str = ""


def _rows() -> list[Row]:
    return [
        Row("onnxruntime", "cpu", "fp32"),
        Row("onnxruntime", "cpu", "fp16"),
        Row("onnxruntime", "cpu", "int8"),
        Row("torch", "cpu", "fp32"),
        Row("onnxruntime", "cuda", "fp32"),
        Row("torch", "cuda", "fp32", "CUDA graph"),
        Row("torch", "cuda", "fp16", "CUDA graph"),
        Row("tensorrt", "cuda", "fp32", "CUDA graph"),
        Row("tensorrt", "cuda", "fp16", "CUDA graph"),
        Row("tensorrt", "cuda", "int8", "CUDA graph"),
    ]


def _skip_reason(row: Row) -> str | None:
    if row.device == "cuda":
        if row.backend == "onnxruntime":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                return "onnxruntime has no CUDA provider"
        elif row.backend == "torch":
            try:
                import torch
            except ImportError:
                return "torch is not installed"
            if not torch.cuda.is_available():
                return "CUDA is not available to torch (no GPU)"
        elif row.backend == "tensorrt":
            try:
                importlib.import_module("tensorrt")
            except ImportError:
                return "the tensorrt package is not installed (needs an NVIDIA GPU)"
            try:
                from sorter.detect.cuda_runtime import CudaRuntime

                CudaRuntime(0)
            except Exception as e:
                return f"no CUDA device ({e})"
    elif row.backend == "torch":
        try:
            importlib.import_module("torch")
        except ImportError:
            return "torch is not installed (pip install 'sorter[train]')"
    return None


def _frames(n: int) -> list[ImageArray]:
    from sorter.train.synth import SynthDataset, SynthRecipe

    ds = SynthDataset(SynthRecipe(n_images=n, seed=424242, randomise_style=False))
    return [ds[i].image for i in range(n)]


def _create(row: Row, model: str | None, threads: int | None) -> EngineDetector:
    cfg = DetectorConfig(type=row.backend, model=model, precision=row.precision, device=row.device, min_score=0.3)  # type: ignore[arg-type]
    if row.backend == "tensorrt":
        from sorter.detect import tensorrt_backend

        return tensorrt_backend.create(cfg, MATERIAL_CLASSES)
    mod = importlib.import_module(f"sorter.detect.{row.backend}_backend")
    det: EngineDetector = mod.create(cfg, MATERIAL_CLASSES, threads=threads)
    return det


def _pct(v: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(v), q))


def bench_row(det: EngineDetector, frames: list[ImageArray], iterations: int, warmup: int) -> dict[str, Any]:
    pre, inf, post, dets = [], [], [], []
    for i in range(warmup + iterations):
        img = frames[i % len(frames)]
        t0 = time.perf_counter_ns()
        tensor, lb = det.preprocess(img)
        t1 = time.perf_counter_ns()
        out = det.engine.infer(tensor)
        t2 = time.perf_counter_ns()
        d = det.postprocess(out, lb)
        t3 = time.perf_counter_ns()
        if i >= warmup:
            pre.append((t1 - t0) / 1e6)
            inf.append((t2 - t1) / 1e6)
            post.append((t3 - t2) / 1e6)
            dets.append(len(d))
    total = [a + b + c for a, b, c in zip(pre, inf, post, strict=True)]
    return {
        "engine": det.engine.name,
        "preprocess_ms": {"p50": _pct(pre, 50), "p99": _pct(pre, 99)},
        "inference_ms": {"p50": _pct(inf, 50), "p99": _pct(inf, 99)},
        "postprocess_ms": {"p50": _pct(post, 50), "p99": _pct(post, 99)},
        "total_ms": {"p50": _pct(total, 50), "p99": _pct(total, 99)},
        "mean_detections": float(np.mean(dets)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="ONNX model (default: the packaged default)")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads of onnxruntime/torch (default: library default)")
    ap.add_argument("--frames", type=int, default=8, help="distinct rendered frames to cycle")
    ap.add_argument("--only", default=None, help="comma-separated backends to run (e.g. onnxruntime)")
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    args = ap.parse_args(argv)

    path = resolve_model(args.model, "fp32")
    spec = read_model_info(path).spec
    frames = _frames(args.frames)
    only = set(args.only.split(",")) if args.only else None
    results: list[dict[str, Any]] = []
    for row in _rows():
        if only and row.backend not in only:
            continue
        rec: dict[str, Any] = {"backend": row.backend, "device": row.device, "precision": row.precision, "note": row.note}
        reason = _skip_reason(row)
        if reason is None:
            try:
                det = _create(row, args.model, args.threads)
            except Exception as e:  # report and continue with the other rows
                reason = f"failed to create: {e}"
            else:
                rec.update(bench_row(det, frames, args.iterations, args.warmup))
                det.close()
        if reason is not None:
            rec["skipped"] = reason
        results.append(rec)

    cols = [("pre p50", 8), ("p99", 7), ("infer p50", 9), ("p99", 7), ("post p50", 8), ("p99", 7), ("total p50", 9), ("p99", 7)]
    stats = " | ".join(" ".join(f"{n:>{w}s}" for n, w in cols[k : k + 2]) for k in range(0, 8, 2))
    hdr = f"{'backend':12s} {'device':6s} {'prec':5s} | {stats}"
    print(
        f"model {path.name}: input {spec.input_w_px}x{spec.input_h_px}, width {spec.width}, frames 1280x720, batch 1, "
        f"{args.iterations} iterations, threads {args.threads or 'default'}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        if "skipped" in r:
            print(f"{r['backend']:12s} {r['device']:6s} {r['precision']:5s} | skipped: {r['skipped']}")
            continue
        p, i, q, t = r["preprocess_ms"], r["inference_ms"], r["postprocess_ms"], r["total_ms"]
        print(
            f"{r['backend']:12s} {r['device']:6s} {r['precision']:5s} | {p['p50']:8.3f} {p['p99']:7.3f} | "
            f"{i['p50']:9.3f} {i['p99']:7.3f} | "
            f"{q['p50']:8.3f} {q['p99']:7.3f} | {t['p50']:9.3f} {t['p99']:7.3f}"
        )
    doc = {
        "model": str(path),
        "spec": json.loads(spec.to_json()),
        "iterations": args.iterations,
        "threads": args.threads,
        "machine": {
            "cpu_count": __import__("os").cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
        },
        "results": results,
    }
    text = json.dumps(doc, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
