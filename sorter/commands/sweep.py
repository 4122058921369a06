"""``sorter sweep``: replay recordings with every setting of a grid, on Ray, and write tables, charts and a page."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HELP = "replay recordings with every setting of a sweep file (Ray tasks; local or a cluster) and chart the results"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recordings", nargs="+", required=True, type=Path, metavar="DIR",
                   help="recording folders (from 'sorter record'); simulated ones are scored against their world")
    p.add_argument("--grid", required=True, type=Path, metavar="SWEEP.yaml", help="the sweep file: base config, keys and values")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="results folder (tables, charts, index.html)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--address", default=None, metavar="ADDRESS",
                       help="Ray cluster to run on: auto, HOST:PORT of a head, or ray://HOST:PORT (default, or local: a "
                            "local Ray instance); the workers must see the recordings at the same paths")
    where.add_argument("--sequential", action="store_true", help="no Ray: replay one after another in this process")
    p.add_argument("--num-cpus", type=int, default=None, metavar="N", help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def main(args: argparse.Namespace) -> int:
    from sorter.errors import ConfigError, SorterError
    from sorter.sweep.grid import load_grid
    from sorter.sweep.page import write_results
    from sorter.sweep.runner import plan_sweep, run_on_ray, run_sequential
    from sorter.sweep.task import TaskResult

    if args.num_cpus is not None and args.num_cpus < 1:
        print(f"sorter sweep: --num-cpus {args.num_cpus}: give at least 1", file=sys.stderr)
        return 2
    try:
        plan = plan_sweep(load_grid(args.grid), args.recordings)
    except ConfigError as e:
        print("sorter sweep: " + "\n  ".join(e.problems), file=sys.stderr)
        return 2

    def progress(done: int, total: int, r: TaskResult) -> None:
        if args.quiet:
            return
        what = f"error: {r.error}" if r.error else (
            f"recovery {r.summary.get('recovery', 0):.3f} purity {r.summary.get('purity', 0):.3f}" if r.summary else "")
        print(f"[{done}/{total}] {r.recording} {r.setting} ({r.task_wall_s:.1f} s on {r.host}) {what}", flush=True)

    mode = "sequential" if args.sequential else f"Ray at {args.address}" if args.address else "local Ray"
    n = len(plan.tasks)
    print(f"sweep: {len(plan.grid.settings)} settings x {len(plan.recordings)} recordings = {n} replays ({mode})", flush=True)
    t0 = time.perf_counter()
    try:
        results = run_sequential(plan, progress) if args.sequential else run_on_ray(plan, args.address, args.num_cpus, progress)
    except SorterError as e:
        print(f"sorter sweep: {e}", file=sys.stderr)
        return 2
    wall_s = time.perf_counter() - t0
    written = write_results(args.out, plan, results, {"mode": mode, "wall_s": round(wall_s, 2)})
    front = ", ".join(written["pareto_front"])
    print(f"{n} replays in {wall_s:.1f} s; best: {', '.join(written['best'])}; Pareto front: {front}")
    print(f"results in {args.out}/index.html" + ("" if written["charts"] else " (no charts: install the report extra)"))
    if written["errors"]:
        print(f"{written['errors']} of {n} replays failed; see the errors column of {args.out}/runs.csv", file=sys.stderr)
        return 1
    return 0
