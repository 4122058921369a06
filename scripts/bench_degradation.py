#!/usr/bin/env python3
"""Graceful degradation: recovery and purity of the deterministic line against detector latency.

Runs ``sorter run --fast`` (stages charged the default latency profile, the
detect stage overridden: ``runtime.latency_override_ms={detect: L}``) for each
latency and prints one row per latency. Deterministic: the same table on any
machine under any load. The oracle detector (ground truth with misses and class
confusion) stands in for the model by default, so the table measures tracking
and planning at the frame rate the latency leaves; ``--detector onnxruntime``
runs the shipped model on rendered frames (slow on a CPU).

    python scripts/bench_degradation.py [--duration 60] [--latency 5 16 33 66 100] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any

from sorter.runtime.line import build_line
from sorter.runtime.loops import run_line
from sorter.runtime.preflight import load_line_config


def run(latency_ms: float, duration_s: float, detector: str, overrides: list[str]) -> dict[str, Any]:
    detect = f"runtime.latency_override_ms={{detect: {latency_ms:g}}}"
    cfg = load_line_config(None, [f"detector.type={detector}", detect, *overrides])
    return run_line(build_line(cfg, fast=True), duration_s, True, threading.Event())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of simulated belt per latency")
    ap.add_argument("--latency", type=float, nargs="+", default=[5, 16, 33, 66, 100], help="detect p50 in ms")
    ap.add_argument("--detector", default="oracle", help="detector.type (default: oracle)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (e.g. tracker.*)")
    ap.add_argument("--json", default=None, help="write every run's summary here")
    args = ap.parse_args()
    results: dict[str, dict[str, Any]] = {}
    head = (
        f"{'detect ms':>9s} {'fps eff':>7s} {'drop %':>6s} {'recovery':>8s} {'rec vis':>7s} {'purity':>6s} "
        f"{'targets':>7s} {'err p99':>7s} {'overloaded':>10s}"
    )
    print(head)
    print("-" * len(head))
    for lat in args.latency:
        s = run(lat, args.duration, args.detector, args.set)
        results[f"{lat:g}"] = s
        fps = s["frames"] / s["sim_duration_s"]
        print(
            f"{lat:9g} {fps:7.1f} {100 * s['frames_dropped_fraction']:6.1f} {s['recovery']:8.3f} {s['recovery_visible']:7.3f} "
            f"{s['purity']:6.3f} {s['targets_passed']:7d} {s['fire_position_error_mm']['p99']:7.2f} "
            f"{'yes' if s['overload']['overloaded'] else 'no':>10s}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
