#!/usr/bin/env python3
"""Build and cache TensorRT engines ahead of time (provisioning an edge box).

For each precision, builds (or finds in the cache) the engine of the model's
variant for this GPU and TensorRT version, loads it and runs the parity
self-test against the model's golden outputs. Run it once per box after
installing or upgrading TensorRT, the GPU driver or the model; the runtime
then starts without a build.

    python scripts/build_engine.py --precision fp16 int8 --cache-dir /var/cache/sorter/engines
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sorter.config import DetectorConfig
from sorter.detect.engine_cache import default_cache_dir
from sorter.errors import SorterError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="ONNX model (default: the packaged default model)")
    ap.add_argument("--precision", nargs="+", default=["fp16"], choices=("fp32", "fp16", "int8"))
    ap.add_argument("--cache-dir", default=None, help=f"engine cache (default {default_cache_dir()})")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--force", action="store_true", help="rebuild even if a cached engine exists")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import tensorrt as trt
    except ImportError:
        print(
            "build_engine: the 'tensorrt' package is not installed; "
            "install TensorRT for this box (JetPack, or pip install tensorrt)",
            file=sys.stderr,
        )
        return 2
    from sorter.detect.cuda_runtime import CudaRuntime
    from sorter.detect.tensorrt_backend import device_index, load_engine

    report = []
    try:
        cuda = CudaRuntime(device_index(args.device))
        for precision in args.precision:
            cfg = DetectorConfig(
                type="tensorrt", model=args.model, precision=precision, device=args.device, engine_cache_dir=args.cache_dir
            )
            t0 = time.monotonic()
            engine, _spec, key, hit = load_engine(cfg, trt, cuda, force_build=args.force)
            engine.close()
            row = {
                "precision": precision,
                "engine": key.file_name(),
                "cached": hit,
                "seconds": round(time.monotonic() - t0, 1),
                "gpu": key.gpu_name,
                "compute_capability": key.compute_capability,
                "tensorrt": key.trt_version,
            }
            report.append(row)
            print(f"{precision}: {'cached' if hit else 'built'} {key.file_name()} in {row['seconds']} s; parity self-test passed")
    except SorterError as e:
        print(f"build_engine: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
