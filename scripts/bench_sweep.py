#!/usr/bin/env python3
"""A sweep one replay after another against the same sweep as Ray tasks on a local Ray: wall time and speed-up.

The sequential sweep is timed twice: with onnxruntime's default threads (a replay then keeps more than one core
busy, which bounds any parallel gain on a small machine) and with the one CPU each Ray task is granted. 16
settings (detector.min_score x airjet.valves.margin_mm) x 2 rendered recordings of the simulated line (seeds 1
and 2; rendered frame by frame, so the same footage on any machine). The Ray sweep is timed three ways: alone on
a started instance (its workers start with the sweep), again on the same workers, and with the instance's start.
Every Ray summary is checked against its sequential twin (all fields but the wall-clock ones).
Prints a table and writes JSON (``--json``).

    .venv/bin/python scripts/bench_sweep.py --workers 2 --duration 1.0 --json runs/bench_sweep.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sorter.runtime.preflight import load_line_config
from sorter.sweep.footage import render_recording
from sorter.sweep.grid import load_grid
from sorter.sweep.runner import plan_sweep, run_on_ray, run_sequential
from sorter.sweep.task import sorting_fields

SWEEP = """\
base:
  set: {detector.type: onnxruntime}
grid:
  detector.min_score: [0.3, 0.4, 0.5, 0.6]
  airjet.valves.margin_mm: [0, 5, 10, 20]
rank: [recovery, purity]
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray instance (default 2)")
    ap.add_argument("--duration", type=float, default=1.0, help="seconds of belt per recording (default 1.0)")
    ap.add_argument("--stride", type=int, default=3, help="keep every n-th camera frame (default 3: 20 fps)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args()

    import ray

    with tempfile.TemporaryDirectory(prefix="bench_sweep") as tmp:
        d = Path(tmp)
        recs = []
        for seed in (1, 2):
            cfg = load_line_config(None, [f"sim.seed={seed}", "sim.density_per_m2=2"])
            render_recording(cfg, d / f"seed{seed}", args.duration, args.stride)
            recs.append(d / f"seed{seed}")
        (d / "sweep.yaml").write_text(SWEEP)
        plan = plan_sweep(load_grid(d / "sweep.yaml"), recs)
        n = len(plan.tasks)

        t0, c0 = time.perf_counter(), time.process_time()
        seq = run_sequential(plan)
        seq_s, seq_cpu_s = time.perf_counter() - t0, time.process_time() - c0

        # The same tasks with the one CPU each that a Ray task is granted (Ray sets OMP_NUM_THREADS=1 in its workers)
        before = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            t0 = time.perf_counter()
            seq1 = run_sequential(plan)
            seq1_s = time.perf_counter() - t0
        finally:
            if before is None:
                del os.environ["OMP_NUM_THREADS"]
            else:
                os.environ["OMP_NUM_THREADS"] = before

        from sorter.sweep.cluster import connect

        t0 = time.perf_counter()
        connect(None, args.workers)
        start_s = time.perf_counter() - t0
        try:
            t1 = time.perf_counter()
            par = run_on_ray(plan)
            ray_s = time.perf_counter() - t1
            t1 = time.perf_counter()  # again: the workers have imported the project and the model is in the page cache
            par_warm = run_on_ray(plan)
            warm_s = time.perf_counter() - t1
        finally:
            ray.shutdown()

    errors = [r.error for r in (*seq, *seq1, *par, *par_warm) if r.error]
    identical = not errors and all(
        sorting_fields(a.summary or {}) == sorting_fields(b.summary or {}) == sorting_fields(c.summary or {})
        == sorting_fields(e.summary or {}) for a, b, c, e in zip(seq, seq1, par, par_warm, strict=True))
    rows = [
        ("sequential, default threads", seq_s, 1.0, seq1_s / seq_s),
        ("sequential, 1 CPU per replay", seq1_s, seq_s / seq1_s, 1.0),
        (f"local Ray, {args.workers} workers (sweep only)", ray_s, seq_s / ray_s, seq1_s / ray_s),
        (f"local Ray, {args.workers} workers (warm, again)", warm_s, seq_s / warm_s, seq1_s / warm_s),
        (f"local Ray, {args.workers} workers (with Ray start)", start_s + ray_s, seq_s / (start_s + ray_s),
         seq1_s / (start_s + ray_s)),
    ]
    frames = sum(r.summary["frames"] for r in seq if r.summary)
    print(f"{n} replays (16 settings x 2 recordings, {frames // n} frames each), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'mode':44s} {'wall s':>8s} {'replays/s':>10s} {'speed-up':>9s} {'vs 1 CPU':>9s}")
    for name, wall, speedup, speedup1 in rows:
        print(f"{name:44s} {wall:8.1f} {n / wall:10.2f} {speedup:8.2f}x {speedup1:8.2f}x")
    print("speed-up: over the sequential sweep with onnxruntime's default threads; vs 1 CPU: over the same tasks one "
          "after another with the one CPU a Ray task is granted")
    print(f"results identical (both sequential runs and Ray): {'yes' if identical else 'NO'}"
          + (f" ({errors[0]})" if errors else ""))
    # What bounds the gain: a replay's own time beside its neighbours (the other worker, Ray's daemons, the driver)
    # against its time alone with the same one CPU. Two workers cannot beat the sequential sweep by more than
    # workers / slowdown.
    alone_s = sum(r.task_wall_s for r in seq1) / n
    beside_s = sum(r.task_wall_s for r in par_warm) / n
    slowdown = beside_s / alone_s
    bound = args.workers / slowdown
    print(f"a replay: {alone_s * 1000:.0f} ms alone with one CPU, {beside_s * 1000:.0f} ms on a warm Ray worker "
          f"({(slowdown - 1) * 100:+.0f} %); {args.workers} workers can gain at most {bound:.2f}x over it")
    cores_busy = seq_cpu_s / seq_s
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "replays": n, "frames_per_replay": frames // n, "cpus": os.cpu_count(), "machine": platform.platform(),
            "loadavg_end": os.getloadavg(), "identical": identical,
            "sequential_cpu_s": round(seq_cpu_s, 2), "sequential_cores_busy": round(cores_busy, 3),
            "replay_alone_s": round(alone_s, 4), "replay_on_ray_s": round(beside_s, 4), "speedup_bound": round(bound, 3),
            "rows": [{"mode": m, "wall_s": round(w, 2), "speedup": round(s, 3), "speedup_vs_1cpu": round(s1, 3)}
                     for m, w, s, s1 in rows],
        }, indent=1) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
