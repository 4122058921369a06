#!/usr/bin/env python3
"""End-to-end loop latency on the simulated line: per-stage p50/p99 and timing error.

Runs ``sorter run --fast`` (processing time charged to the simulated clock) for
each scenario and prints one table row per stage, plus the fire-position error
and drops. ``--live`` also runs the live (real-time, threaded) loop.

    python scripts/bench_loop.py [--duration 30] [--live] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any

from sorter.runtime.line import build_line
from sorter.runtime.loops import run_line
from sorter.runtime.preflight import load_line_config

SCENARIOS: dict[str, list[str]] = {
    "airjet low (0.5/m2)": ["sim.density_per_m2=0.5"],
    "airjet medium (1/m2)": [],
    "airjet high (2/m2)": ["sim.density_per_m2=2"],
    "airjet dense (4/m2)": ["sim.density_per_m2=4"],
}


def run(overrides: list[str], duration_s: float, live: bool, files: list[str] | None = None) -> dict[str, Any]:
    cfg = load_line_config(files, overrides)
    line = build_line(cfg, fast=not live)
    return run_line(line, duration_s, not live, threading.Event())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--live", action="store_true", help="also run the live loop (real time) on the medium scenario")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    results: dict[str, dict[str, Any]] = {}
    for name, ov in SCENARIOS.items():
        results[name + " fast"] = run(ov, args.duration, live=False)
    results["robot (sim-robot.yaml) fast"] = run([], args.duration, live=False, files=["sim-robot.yaml"])
    if args.live:
        results["airjet medium live"] = run([], args.duration, live=True)
    stages = ["detect", "project", "track", "plan", "actuate", "total"]
    head = f"{'scenario':34s} {'recov':>6s} {'purity':>6s} {'err p50':>7s} {'err p99':>7s} {'drop %':>6s} " + " ".join(
        f"{s + ' p50/p99 ms':>19s}" for s in stages
    )
    print(head)
    print("-" * len(head))
    for name, s in results.items():
        lat = s["latency_ms"]
        cells = " ".join(f"{lat[st]['p50']:>9.3f}/{lat[st]['p99']:<9.3f}" if st in lat else f"{'-':>19s}" for st in stages)
        fe = s["fire_position_error_mm"]
        print(
            f"{name:34s} {s['recovery']:6.3f} {s['purity']:6.3f} {fe['p50']:7.2f} {fe['p99']:7.2f} "
            f"{100 * s['frames_dropped_fraction']:6.2f} {cells}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
