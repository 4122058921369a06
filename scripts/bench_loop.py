#!/usr/bin/env python3
"""End-to-end loop latency on the simulated line: per-stage p50/p99 and timing error.

Runs ``sorter run --fast`` with ``runtime.charge=wall`` (this machine's real
processing time charged to the simulated clock) for each scenario and prints one
table row per stage, plus the fire-position error and drops. ``--live`` also runs
the live (real-time, threaded) loop on the medium scenario twice: with the
capture thread preprocessing each frame (the default), then with the loop doing
it before each inference (``runtime.prepare_in_capture=false``); ``--set``
applies to those live runs.

``--write-profile PATH`` measures the default line (the shipped model through
ONNX Runtime, or the config given with ``--config``) and writes this box's
latency profile: per stage p50/p99 and 200 quantiles of the measured times,
what deterministic ``sorter run --fast`` runs charge (``runtime.latency_profile``).

    python scripts/bench_loop.py [--duration 30] [--live | --live-only] [--set KEY=VALUE] [--json out.json]
    python scripts/bench_loop.py --write-profile configs/profiles/cpu-2core.yaml --duration 60
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from pathlib import Path
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
    cfg = load_line_config(files, ["runtime.charge=wall", *overrides])
    line = build_line(cfg, fast=not live)
    return run_line(line, duration_s, not live, threading.Event())


def run_live_process(overrides: list[str], duration_s: float) -> dict[str, Any]:
    """A live run in a fresh ``sorter run`` process, so that every live row starts the same way.

    Two live runs of the same seed in one process did not see the same objects (188 against 176 in 60 s).
    """
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.json"
        sets = [a for ov in overrides for a in ("--set", ov)]
        cli = "import sys; from sorter.cli import main; sys.exit(main())"
        cmd = [sys.executable, "-c", cli, "run", "--duration", f"{duration_s:g}", "--quiet", "--summary", str(out), *sets]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summary: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return summary


def measure_profile(
    files: list[str] | None, overrides: list[str], duration_s: float, name: str, note: str, cpu_time: bool
) -> dict[str, Any]:
    """This box's per-stage times on a ``--fast`` run charged wall time: the file form of a latency profile.

    With ``cpu_time`` each stage is measured in CPU time of the loop's thread, with a one-thread ONNX Runtime
    session (all inference on that thread): what the stage costs a core of its own, whatever else the box runs.
    """
    import platform
    import time

    import numpy as np

    from sorter.runtime.latency_profile import STAGES

    cfg = load_line_config(files, ["runtime.charge=wall", *overrides])
    line = build_line(cfg, fast=True)
    if cpu_time:
        if cfg.detector.type == "onnxruntime":
            from sorter.detect.onnxruntime_backend import create
            from sorter.entities import MATERIAL_CLASSES

            line.detector.close()
            line.detector = line.pipeline.detector = create(cfg.detector, MATERIAL_CLASSES, threads=1)
        line.pipeline.timer_ns = time.thread_time_ns
    recorder = line.latency
    summary = run_line(line, duration_s, True, threading.Event())
    stages: dict[str, Any] = {}
    for stage in STAGES:
        v = recorder.samples_ms(stage)
        if v.size:
            q = np.percentile(v, np.linspace(0.25, 99.75, 200))
            stages[stage] = {
                "p50_ms": round(float(np.percentile(v, 50)), 4),
                "p99_ms": round(float(np.percentile(v, 99)), 4),
                "samples_ms": [round(float(x), 4) for x in q],
            }
    cpus = os.cpu_count()
    how = "thread CPU time per stage, one-thread ONNX Runtime session" if cpu_time else "wall time per stage"
    desc = (
        f"measured ({how}) on {platform.machine()} with {cpus} CPU(s), detector {summary['detector']}, "
        f"{summary['frames']} frames of {duration_s:g} s simulated belt"
    )
    return {"name": name, "source": "measured", "description": desc + (f"; {note}" if note else ""), "stages": stages}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--live", action="store_true", help="also run the live loop (real time) on the medium scenario")
    ap.add_argument("--live-only", action="store_true", help="only the live runs (implies --live)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--write-profile", default=None, metavar="PATH", help="measure this box and write its latency profile")
    ap.add_argument("--config", action="append", default=None, help="config of the measured line (default: the default line)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override of the measured line")
    ap.add_argument("--name", default=None, help="profile name (default: the file's stem)")
    ap.add_argument("--note", default="", help="said in the profile's description (e.g. the load on the box)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="measure stages in CPU time of the loop's thread (one-thread inference): a core's cost under load")
    args = ap.parse_args()
    if args.write_profile:
        import yaml

        out = Path(args.write_profile)
        prof = measure_profile(args.config, args.set, args.duration, args.name or out.stem, args.note, args.cpu_time)
        head = "# Latency profile charged by `sorter run --fast` (runtime.latency_profile). Written by:\n"
        flags = " --cpu-time" if args.cpu_time else ""
        head += f"#   python scripts/bench_loop.py --write-profile {args.write_profile} --duration {args.duration:g}{flags}\n"
        out.write_text(head + yaml.safe_dump(prof, sort_keys=False, width=120, default_flow_style=None), encoding="utf-8")
        for stage, m in prof["stages"].items():
            print(f"{stage:8s} p50 {m['p50_ms']:8.3f} ms  p99 {m['p99_ms']:8.3f} ms")
        print(f"wrote {out}")
        return
    results: dict[str, dict[str, Any]] = {}
    if not args.live_only:
        for name, ov in SCENARIOS.items():
            results[name + " fast"] = run(ov, args.duration, live=False)
        results["robot (sim-robot.yaml) fast"] = run([], args.duration, live=False, files=["sim-robot.yaml"])
    if args.live or args.live_only:  # the capture thread preprocesses (the default), then the loop does it before each inference
        results["airjet medium live"] = run_live_process(args.set, args.duration)
        off = [*args.set, "runtime.prepare_in_capture=false"]
        results["airjet medium live, loop preprocesses"] = run_live_process(off, args.duration)
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
    for name, s in results.items():
        cap = s.get("capture_preprocess")
        if cap is not None and "preprocess_ms" in cap:
            pre = cap["preprocess_ms"]
            print(f"{name}: preprocessed in the capture thread {pre['p50']:.3f}/{pre['p99']:.3f} ms p50/p99, "
                  f"{cap['frames_prepared']} frames, {cap.get('prepared_used', 0)} used by the loop, "
                  f"{s['frames']} processed")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
