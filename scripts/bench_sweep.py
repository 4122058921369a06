#!/usr/bin/env python3
"""A sweep one replay after another against the same sweep as Ray tasks on a local Ray: wall time and speed-up.

16 settings (detector.min_score x airjet.valves.margin_mm) x 2 rendered recordings of the simulated line (seeds 1
and 2; rendered frame by frame, so the same footage on any machine). The Ray row is timed twice: the sweep alone
on a started instance, and with the instance's start. Every Ray summary is checked against its sequential twin
(all fields but the wall-clock ones). Prints a table and writes JSON (``--json``).

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

        from sorter.sweep.cluster import connect

        t0 = time.perf_counter()
        connect(None, args.workers)
        start_s = time.perf_counter() - t0
        try:
            t1 = time.perf_counter()
            par = run_on_ray(plan)
            ray_s = time.perf_counter() - t1
        finally:
            ray.shutdown()

    errors = [r.error for r in (*seq, *par) if r.error]
    identical = not errors and all(
        sorting_fields(a.summary or {}) == sorting_fields(b.summary or {}) for a, b in zip(seq, par, strict=True))
    rows = [
        ("sequential (one process)", seq_s, 1.0),
        (f"local Ray, {args.workers} workers (sweep only)", ray_s, seq_s / ray_s),
        (f"local Ray, {args.workers} workers (with Ray start)", start_s + ray_s, seq_s / (start_s + ray_s)),
    ]
    frames = sum(r.summary["frames"] for r in seq if r.summary)
    print(f"{n} replays (16 settings x 2 recordings, {frames // n} frames each), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'mode':44s} {'wall s':>8s} {'replays/s':>10s} {'speed-up':>9s}")
    for name, wall, speedup in rows:
        print(f"{name:44s} {wall:8.1f} {n / wall:10.2f} {speedup:8.2f}x")
    print(f"Ray results identical to sequential: {'yes' if identical else 'NO'}" + (f" ({errors[0]})" if errors else ""))
    # The sequential sweep already keeps ``cores_busy`` cores busy (ONNX Runtime's intra-op threads), so no number
    # of workers on this machine can beat it by more than cpus / cores_busy.
    cores_busy = seq_cpu_s / seq_s
    bound = (os.cpu_count() or 1) / cores_busy
    print(f"sequential sweep: {seq_cpu_s:.1f} CPU-s in {seq_s:.1f} s = {cores_busy:.2f} cores busy; "
          f"the most any parallel run on {os.cpu_count()} CPUs can gain over it: {bound:.2f}x")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "replays": n, "frames_per_replay": frames // n, "cpus": os.cpu_count(), "machine": platform.platform(),
            "loadavg_end": os.getloadavg(), "identical": identical,
            "sequential_cpu_s": round(seq_cpu_s, 2), "sequential_cores_busy": round(cores_busy, 3),
            "speedup_bound": round(bound, 3),
            "rows": [{"mode": m, "wall_s": round(w, 2), "speedup": round(s, 3)} for m, w, s in rows],
        }, indent=1) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
