#!/usr/bin/env python3
"""ONNX Runtime intra-op threads and spinning, on an idle machine and beside a CPU hog: per-inference wall and CPU time.

The shipped model on a fixed input (inference only, no pre- or post-processing).
Spinning pool threads keep a core busy between inferences; beside another busy
process they compete with it and with the loop. The onnxruntime backend turns
spinning off (``session.intra_op.allow_spinning = 0``); this shows why.

    python scripts/bench_ort_threads.py [--iterations 80] [--hogs 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import numpy as np

HOG = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 600:\n    pass\n"
CONFIGS: list[tuple[int | None, bool]] = [(None, True), (None, False), (2, False), (1, True), (1, False)]


def session(path: str, threads: int | None, spin: bool) -> Any:
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.inter_op_num_threads = 1
    if threads:
        o.intra_op_num_threads = threads
    o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])


def bench(s: Any, n: int) -> tuple[float, float, float]:
    """Wall p50, wall p99 and median process CPU time per inference, in ms."""
    inp = s.get_inputs()[0]
    x = np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in inp.shape], dtype=np.float32)
    for _ in range(10):
        s.run(None, {inp.name: x})
    wall, cpu = [], []
    for _ in range(n):
        t, p = time.perf_counter(), time.process_time()
        s.run(None, {inp.name: x})
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - p) * 1e3)
    return float(np.percentile(wall, 50)), float(np.percentile(wall, 99)), float(np.median(cpu))


def main() -> None:
    from sorter.detect.model_files import resolve_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=80)
    ap.add_argument("--hogs", type=int, default=1, help="CPU hogs beside the loaded runs")
    args = ap.parse_args()
    path = str(resolve_model(None))
    sessions = {c: session(path, *c) for c in CONFIGS}
    print(f"{'load':10s} {'threads':>7s} {'spinning':>8s} {'wall p50 ms':>11s} {'wall p99 ms':>11s} {'CPU ms/inference':>16s}")
    for hogs in (0, args.hogs):
        procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
        time.sleep(0.5)
        try:
            for (threads, spin), s in sessions.items():
                p50, p99, cpu = bench(s, args.iterations)
                load = f"{hogs} hog(s)" if hogs else "idle"
                th = str(threads or "default")
                print(f"{load:10s} {th:>7s} {'on' if spin else 'off':>8s} {p50:11.2f} {p99:11.2f} {cpu:16.2f}", flush=True)
        finally:
            for p in procs:
                p.kill()
                p.wait(timeout=10)


if __name__ == "__main__":
    main()
