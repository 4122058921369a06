#!/usr/bin/env python3
"""Benchmark the simulated camera: cost of ``SimWorld.capture`` with and without pixels.

Prints a table: objects in view, p50/p99/max milliseconds per frame for
``render=True``, ``render=False`` (ground truth only) and ``render=True`` with
a new randomised style every frame (detector training data).

Usage::

    python scripts/bench_render.py                  # 1280x720, ~20 objects in view
    python scripts/bench_render.py --density 5 --frames 600
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from sorter.config import Config
from sorter.entities import Frame
from sorter.sim.mount import sim_camera_model
from sorter.sim.render import RenderStyle
from sorter.sim.world import SimWorld


def _world(cfg: Config) -> SimWorld:
    return SimWorld(
        cfg.sim,
        belt_width_mm=cfg.belt.width_mm,
        nominal_speed_mm_s=cfg.belt.nominal_speed_mm_s,
        encoder_counts_per_mm=cfg.belt.encoder_counts_per_mm,
        camera=sim_camera_model(cfg),
    )


def _measure(step: Callable[[int], Frame], frames: int, warmup: int) -> tuple[list[float], list[int]]:
    times_ms: list[float] = []
    counts: list[int] = []
    for i in range(frames + warmup):
        t0 = time.perf_counter()
        f = step(i)
        dt = (time.perf_counter() - t0) * 1e3
        if i >= warmup:
            times_ms.append(dt)
            counts.append(len(f.truth or ()))
    return times_ms, counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--density", type=float, default=17.0, help="objects per m2 of belt (17 gives ~20 in a 1280x720 view)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=10, help="frames not timed (texture and noise bank are built lazily)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=float, default=60.0)
    args = ap.parse_args()

    cfg = Config.model_validate(
        {
            "camera": {"width_px": args.width, "height_px": args.height, "fps": args.fps},
            "sim": {"seed": args.seed, "density_per_m2": args.density},
        }
    )
    frame_ns = round(1e9 / args.fps)
    rows: list[tuple[str, list[float], list[int]]] = []

    w = _world(cfg)
    rows.append(("render=True", *_measure(lambda i: w.capture(i * frame_ns, i, render=True), args.frames, args.warmup)))
    w = _world(cfg)
    rows.append(("render=False", *_measure(lambda i: w.capture(i * frame_ns, i, render=False), args.frames, args.warmup)))
    w = _world(cfg)
    rng = np.random.default_rng(args.seed)

    def randomised(i: int) -> Frame:
        w.set_style(RenderStyle.randomised(rng))
        return w.capture(i * frame_ns, i, render=True)

    rows.append(("render=True, new style/frame", *_measure(randomised, max(20, args.frames // 10), 2)))

    print(f"SimWorld.capture at {args.width}x{args.height}, density {args.density:g}/m2, seed {args.seed}")
    print(f"{'mode':<30} {'frames':>6} {'objects':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, times, counts in rows:
        t = np.asarray(times)
        p50, p99 = np.percentile(t, [50, 99])
        print(f"{name:<30} {len(t):>6} {np.mean(counts):>8.1f} {p50:>8.2f} {p99:>8.2f} {t.max():>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
