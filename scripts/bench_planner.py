"""Benchmark of ``AirjetPlanner.plan`` and ``RobotPlanner.plan`` against the number of active tracks.

Synthetic stream at 2.5 m/s and 60 fps: confirmed tracks of random classes
(a third of them targets) cross a 720 mm camera view, are refined while in
view, kept 400 mm of travel after leaving it, then retired once, as the
tracker reports them. The object density is set so that the requested number
of tracks is active on average. Prints plan() time p50/p99 per planner and
scene size, with the thread's CPU time beside the wall time (a busy host
preempts the process; CPU time does not count that).

Usage: python scripts/bench_planner.py [--frames 3000] [--seed 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from sorter.entities import Track
from sorter.schedule import AirjetParams, AirjetPlanner, PolicyParams, RobotParams, RobotPlanner

SPEED_MM_S = 2500.0
FPS = 60.0
VIEW_Y_MM = (-360.0, 360.0)
KEEP_UNSEEN_MM = 400.0

Frame = tuple[list[Track], list[Track], float]


def stream(n_active: int, n_frames: int, seed: int) -> list[Frame]:
    """Per frame: active tracks, tracks retired in this frame, odometer."""
    rng = np.random.default_rng(seed)
    live_span = VIEW_Y_MM[1] - VIEW_Y_MM[0] + KEEP_UNSEEN_MM  # belt length over which a track is active
    travel = SPEED_MM_S / FPS * n_frames + live_span
    n_obj = int(n_active * travel / live_span)
    u = -rng.uniform(0.0, travel, n_obj) + VIEW_Y_MM[0]
    objs = [
        Track(
            track_id=i + 1,
            class_id=int(c),
            class_confidence=float(conf),
            class_votes=tuple(10.0 if k == c else 0.0 for k in range(6)),
            u_mm=float(u[i]),
            x_mm=float(x),
            du_per_mm=float(du),
            dx_per_mm=float(dx),
            length_mm=float(length),
            width_mm=float(width),
            sigma_u_mm=2.0,
            sigma_x_mm=2.0,
            s_ref_mm=0.0,
            t_first_ns=0,
            t_last_ns=0,
            hits=12,
            confirmed=True,
        )
        for i, (c, conf, x, du, dx, length, width) in enumerate(
            zip(
                np.where(rng.random(n_obj) < 1 / 3, 0, rng.integers(1, 6, n_obj)),  # a third are targets
                rng.uniform(0.4, 0.99, n_obj),
                rng.uniform(60.0, 1140.0, n_obj),
                rng.normal(0.0, 0.005, n_obj),
                rng.normal(0.0, 0.005, n_obj),
                rng.uniform(40.0, 250.0, n_obj),
                rng.uniform(40.0, 200.0, n_obj),
                strict=True,
            )
        )
    ]
    order = np.argsort(-u)
    frames: list[Frame] = []
    for k in range(n_frames):
        s = SPEED_MM_S * k / FPS
        active: list[Track] = []
        retired: list[Track] = []
        for i in order.tolist():
            o = objs[i]
            y = o.u_mm + s
            if y < VIEW_Y_MM[0]:
                break  # sorted by u: the rest are further upstream
            s_last = min(s, VIEW_Y_MM[1] - o.u_mm)
            if s - s_last > KEEP_UNSEEN_MM + SPEED_MM_S / FPS:
                continue
            tr = dataclasses.replace(o, s_ref_mm=s_last)
            (retired if s - s_last > KEEP_UNSEEN_MM else active).append(tr)
        frames.append((active, retired, s))
    return frames


def bench(planner: AirjetPlanner | RobotPlanner, frames: list[Frame]) -> dict[str, float]:
    warm = min(200, len(frames) // 5)
    wall, cpu, n_cmd = [], [], 0
    for k, (active, retired, s) in enumerate(frames):
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        res = planner.plan(active, retired, s, SPEED_MM_S, k)
        t1 = time.perf_counter_ns()
        c1 = time.thread_time_ns()
        n_cmd += len(res.commands)
        if k >= warm:
            wall.append((t1 - t0) / 1e6)
            cpu.append((c1 - c0) / 1e6)
    return {
        "active": float(np.mean([len(f[0]) for f in frames[warm:]])),
        "commands": float(n_cmd),
        "p50": float(np.percentile(wall, 50)),
        "p99": float(np.percentile(wall, 99)),
        "cpu_p50": float(np.percentile(cpu, 50)),
        "cpu_p99": float(np.percentile(cpu, 99)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    policy = PolicyParams(target_class_ids=frozenset({0}), touching_nontarget="eject_if_larger")
    print(f"plan() per frame, {args.frames} frames per row at {FPS:g} fps, {SPEED_MM_S:g} mm/s")
    head = ("planner", "active tracks", "mean active", "commands", "p50 ms", "p99 ms", "cpu p50 ms", "cpu p99 ms")
    print(" | ".join(head))
    print("-" * 96)
    for n in (10, 30, 60):
        frames = stream(n, args.frames, args.seed)
        planners: list[tuple[str, AirjetPlanner | RobotPlanner]] = [
            ("air-jet", AirjetPlanner(AirjetParams(y_eject_mm=1200.0, policy=policy))),
            ("robot", RobotPlanner(RobotParams(policy=policy, values={0: 2.0}))),
        ]
        for name, planner in planners:
            r = bench(planner, frames)
            cells = (
                name,
                f"{n}",
                f"{r['active']:.1f}",
                f"{r['commands']:.0f}",
                *(f"{r[k]:.3f}" for k in ("p50", "p99", "cpu_p50", "cpu_p99")),
            )
            print(" | ".join(c.rjust(len(h)) for c, h in zip(cells, head, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
