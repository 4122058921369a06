"""Benchmark of ``BeltTracker.update``: time per update against the number of objects in view, and tracking quality.

Synthetic belt: objects at random lateral positions stream through a 720 mm
long camera view at 2.5 m/s, 15 % of them sliding (up to 40 mm/s along and
across the belt), measured at 60 fps with 3 mm noise, boxes cut at the view
border, 5 % misses, 2 % class confusion and 0.02 false positives per frame.
The spawn rate is set so that the requested number of objects is in view on
average.

Prints, for 10/30/60/100 objects in view:

* time per update, p50/p99, wall clock and the thread's CPU time (the latter
  excludes preemption by other processes on a busy host). The update is
  everything ``BeltTracker.update`` does for the line: retirement, prediction,
  gating, assignment, the filter update, new tracks and the export of the live
  tracks for the consumers (read-only columns, ``TrackTable.columns``; earlier
  trackers built a frozen ``Track`` per updated track, ``TrackTable.rebuild``):
  the CPU table also gives the part spent in that export;
* the air-jet planner fed with each update's output, timed apart: the part of
  the work a consumer does with what the tracker hands out (a planner that had
  to build every entity itself would show here);
* quality: ID switches, objects never confirmed, objects split over several
  confirmed tracks, confirmed tracks made of false positives, and the error of
  the position predicted 150 ms ahead (the planner's horizon) against truth;
* confirmation at low frame rates: the same scenes processed at 15 and 10 fps
  (a loaded machine), share of the objects seen at least twice that got a
  confirmed track.

With ``--before REV`` (default: the last revision of the previous tracker) the
tracker and planner of that git revision run on the same frames, interleaved
frame by frame with the current ones so that a busy host slows both alike, and
the tables show both; the outputs are then compared frame by frame (the track
of every measurement, every field of every live and retired track bit for bit,
every command and decision), and ``--require-identical`` exits with status 1
when any differs. Without git or that revision only the current tracker runs.

The tracker runs its compiled kernels (``sorter/track/compiled.py``) where
numba is installed; ``SORTER_TRACKER_KERNELS=numpy`` runs the numpy
implementation instead (both trackers, when the 'before' revision has the
choice), which gives the same outputs bit for bit.

Usage: python scripts/bench_tracker.py [--frames 3000] [--seed 0] [--before REV | --before none] [--require-identical]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from itertools import pairwise
from operator import attrgetter
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

import sorter.schedule
import sorter.track
from sorter.entities import BeltMeasurements, Track

VIEW_Y_MM = (-360.0, 360.0)
BELT_WIDTH_MM = 1200.0
SPEED_MM_S = 2500.0
FPS = 60.0
AHEAD_S = 0.150
Y_EJECT_MM = 800.0
PLAN_AFTER_S = 0.010  # the planner runs this long after the exposure (odometer and clock moved on)
#: the last revision of the previous tracker (per-frame numpy over a row-major table, numpy Hungarian per component)
DEFAULT_BEFORE = "53fbf551"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Scene:
    """Frames with the truth behind every measurement."""

    frames: list[BeltMeasurements]
    truth: list[np.ndarray]  # object index per measurement, -1 for a false positive
    u0: np.ndarray  # belt-fixed centre at t = 0
    x0: np.ndarray
    vu: np.ndarray  # residual motion, mm/s
    vx: np.ndarray

    def position(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """World centre ``(y_w, x)`` of every object at time ``t_s`` (odometer from the belt speed)."""
        return self.u0 + self.vu * t_s + SPEED_MM_S * t_s, self.x0 + self.vx * t_s


def scene(n_in_view: int, n_frames: int, seed: int) -> Scene:
    """``n_frames`` frames at 60 fps with about ``n_in_view`` objects in view."""
    rng = np.random.default_rng(seed)
    view_len = VIEW_Y_MM[1] - VIEW_Y_MM[0]
    travel = SPEED_MM_S / FPS * n_frames + 2 * view_len
    n_obj = int(n_in_view * travel / view_len)
    # lanes keep objects from piling up: jittered positions on a grid in belt-fixed coordinates
    lanes = max(1, int(BELT_WIDTH_MM // 130))
    rows = int(np.ceil(n_obj / lanes))
    pitch_u = travel / rows
    lane_w = BELT_WIDTH_MM / lanes
    u = -(np.repeat(np.arange(rows), lanes)[:n_obj] * pitch_u) + rng.uniform(-0.2, 0.2, n_obj) * pitch_u - VIEW_Y_MM[1]
    x = (np.tile(np.arange(lanes), rows)[:n_obj] + 0.5) * lane_w + rng.uniform(-0.2, 0.2, n_obj) * lane_w
    length = rng.uniform(40.0, min(150.0, 0.55 * pitch_u + 40.0), n_obj)
    width = rng.uniform(40.0, 110.0, n_obj)
    cls = rng.integers(0, 6, n_obj).astype(np.int32)
    sliding = rng.random(n_obj) < 0.15
    vu = np.where(sliding, rng.uniform(-40.0, 40.0, n_obj), 0.0)
    vx = np.where(sliding, rng.uniform(-40.0, 40.0, n_obj), 0.0)
    frames, truth = [], []
    for k in range(n_frames):
        t = k / FPS
        s = SPEED_MM_S * t
        y = u + vu * t + s
        xt = x + vx * t
        lo = np.maximum(y - length / 2, VIEW_Y_MM[0])
        hi = np.minimum(y + length / 2, VIEW_Y_MM[1])
        vis = np.clip(hi - lo, 0.0, None) / length
        idx = np.flatnonzero((vis >= 0.5) & (rng.random(n_obj) >= 0.05))
        n = idx.size
        mc = cls[idx].copy()
        confused = rng.random(n) < 0.02
        mc[confused] = (mc[confused] + 1) % 6
        my = (lo[idx] + hi[idx]) / 2 + rng.normal(0, 3.0, n)
        mx = xt[idx] + rng.normal(0, 3.0, n)
        ml = hi[idx] - lo[idx] + rng.normal(0, 2.0, n)
        mw = width[idx] + rng.normal(0, 2.0, n)
        ids = idx
        if rng.random() < 0.02:
            my = np.append(my, rng.uniform(*VIEW_Y_MM))
            mx = np.append(mx, rng.uniform(0, BELT_WIDTH_MM))
            ml = np.append(ml, 80.0)
            mw = np.append(mw, 80.0)
            mc = np.append(mc, 0).astype(np.int32)
            ids = np.append(ids, -1)
        frames.append(
            BeltMeasurements(
                t_capture_ns=round(k * 1e9 / FPS),
                s_capture_mm=s,
                x_mm=mx,
                y_w_mm=my,
                length_mm=ml,
                width_mm=mw,
                scores=rng.uniform(0.6, 0.95, my.size),
                class_ids=mc,
            )
        )
        truth.append(ids)
    return Scene(frames, truth, u, x, vu, vx)


# ---------------------------------------------------------------------- trackers


def load_before(rev: str) -> Stages | None:
    """The ``sorter.track`` and ``sorter.schedule`` packages of git revision ``rev`` as separate packages, or None."""
    try:
        return Stages(_load_package(rev, "track"), _load_package(rev, "schedule"))
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"note: no 'before' columns: cannot read sorter/track and sorter/schedule at git revision {rev!r} ({exc})")
        return None


def _load_package(rev: str, name: str) -> ModuleType:
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-tree", "--name-only", rev, f"sorter/{name}/"], capture_output=True, text=True, check=True
    ).stdout.split()
    pkg = f"_sorter_{name}_before"
    tmp = Path(tempfile.mkdtemp(prefix="bench_tracker_"))
    (tmp / pkg).mkdir()
    for file in files:
        if not file.endswith(".py"):
            continue
        src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{file}"], capture_output=True, text=True, check=True).stdout
        src = src.replace(f"sorter.{name}.", f"{pkg}.").replace(f"from sorter.{name} import", f"from {pkg} import")
        (tmp / pkg / Path(file).name).write_text(src)
    sys.path.insert(0, str(tmp))
    return importlib.import_module(pkg)


class Stages(NamedTuple):
    """The tracker's package and the planner's package of one revision."""

    track: ModuleType
    schedule: ModuleType


def make_tracker(mod: ModuleType) -> Any:
    return mod.BeltTracker(mod.TrackerParams(view_y_min_mm=VIEW_Y_MM[0], view_y_max_mm=VIEW_Y_MM[1]))


def make_planner(mod: ModuleType) -> Any:
    """The air-jet planner of the reference line: 64 valves across the belt, ejection line 440 mm past the view."""
    p = mod.AirjetParams(y_eject_mm=Y_EJECT_MM, valve_count=64, valve_pitch_mm=BELT_WIDTH_MM / 64, view_end_y_mm=VIEW_Y_MM[1])
    return mod.AirjetPlanner(p)


@dataclass
class Run:
    """Per-update times and everything the quality measures need."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    export_ms: list[float] = field(default_factory=list)  # thread CPU time of the entity export inside each update
    live: list[int] = field(default_factory=list)
    ids: list[tuple[int, ...]] = field(default_factory=list)
    confirmed: set[int] = field(default_factory=set)
    track_objects: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    pred_err_mm: list[float] = field(default_factory=list)
    plan_ms: list[float] = field(default_factory=list)  # thread CPU time of the planner fed with each update's output
    outputs: list[Any] = field(default_factory=list)  # each update's output, kept to compare trackers
    plans: list[Any] = field(default_factory=list)  # each plan, kept likewise


_FIELDS = attrgetter(*(f.name for f in fields(Track)))


def output_digest(out: Any) -> str:
    """Everything an update returns: every field of every live and retired track and the track of every measurement,
    floats to the last bit and Python types included (``repr``: an ``int`` must not become ``numpy.int64``)."""
    return repr(([_FIELDS(t) for t in out.active], [_FIELDS(t) for t in out.retired], out.meas_track_ids))


def export_clock(tracker: Any) -> list[int] | None:
    """Per-instance timer of the tracker's export of its tracks for consumers (``TrackTable.columns``, or the entity
    rebuild of earlier trackers): a one-item list summing the CPU ns of its calls, reset by the caller."""
    table: Any = getattr(tracker, "_table", None)
    name = next((n for n in ("columns", "rebuild") if hasattr(table, n)), None)
    if name is None:
        return None
    export = getattr(table, name)
    spent = [0]

    def timed(*args: Any) -> Any:
        c0 = time.thread_time_ns()
        out = export(*args)
        spent[0] += time.thread_time_ns() - c0
        return out

    setattr(table, name, timed)  # on the instance: other trackers of the same class are untouched
    return spent


def run_trackers(sc: Scene, mods: dict[str, Stages], step: int = 1, warm: int = 200, keep: bool = False) -> dict[str, Run]:
    """Run every tracker over the scene's frames (every ``step``-th), interleaved frame by frame.

    Each update's output goes to the planner of the same revision, timed apart. With ``keep`` each output and plan
    is kept to compare the revisions afterwards (:func:`identical`).
    """
    trackers = {name: make_tracker(m.track) for name, m in mods.items()}
    planners = {name: make_planner(m.schedule) for name, m in mods.items()}
    clocks = {name: export_clock(t) for name, t in trackers.items()}
    runs = {name: Run() for name in mods}
    for k in range(0, len(sc.frames), step):
        meas = sc.frames[k]
        truth = sc.truth[k].tolist()
        t_s = k / FPS
        y_ahead, x_ahead = sc.position(t_s + AHEAD_S)
        s_ahead = SPEED_MM_S * (t_s + AHEAD_S)
        for name, tracker in trackers.items():
            clock = clocks[name]
            if clock is not None:
                clock[0] = 0
            c0 = time.thread_time_ns()
            w0 = time.perf_counter_ns()
            out = tracker.update(meas)
            w1 = time.perf_counter_ns()
            c1 = time.thread_time_ns()
            s_now = meas.s_capture_mm + SPEED_MM_S * PLAN_AFTER_S
            plan = planners[name].plan(out.active, out.retired, s_now, SPEED_MM_S, meas.t_capture_ns + round(PLAN_AFTER_S * 1e9))
            c2 = time.thread_time_ns()
            r = runs[name]
            if k >= warm:
                r.wall_ms.append((w1 - w0) / 1e6)
                r.cpu_ms.append((c1 - c0) / 1e6)
                r.plan_ms.append((c2 - c1) / 1e6)
                if clock is not None:
                    r.export_ms.append(clock[0] / 1e6)
                r.live.append(len(out.active))
            r.ids.append(out.meas_track_ids)
            if keep:
                r.outputs.append(out)
                r.plans.append(plan)
            for tr in (*out.active, *out.retired):
                if tr.confirmed:
                    r.confirmed.add(tr.track_id)
            by_id = {tr.track_id: tr for tr in out.active}
            for tid, obj in zip(out.meas_track_ids, truth, strict=True):
                if obj < 0:
                    continue  # a false positive taken by a track is not a switch
                r.track_objects[tid].append(obj)
                tr = by_id[tid]
                if tr.confirmed:
                    y_p, x_p, _, _ = tr.predict(s_ahead)
                    r.pred_err_mm.append(float(np.hypot(y_p - y_ahead[obj], x_p - x_ahead[obj])))
    return runs


def plan_digest(plan: Any) -> str:
    """Every command and decision of a plan, floats to the last bit (``repr``), whatever class holds them."""
    return repr([(type(x).__name__, dataclasses.astuple(x)) for x in (*plan.commands, *plan.decisions)])


def identical(runs: dict[str, Run]) -> tuple[str, str, str]:
    """``(same assignments, same outputs, same plans)``, each ``"k of n"`` frames, between the 'before' and 'after' runs."""
    b, a = runs["before"], runs["after"]
    same_ids = sum(x == y for x, y in zip(b.ids, a.ids, strict=True))
    same_out = sum(output_digest(x) == output_digest(y) for x, y in zip(b.outputs, a.outputs, strict=True))
    same_plan = sum(plan_digest(x) == plan_digest(y) for x, y in zip(b.plans, a.plans, strict=True))
    n = len(a.ids)
    return f"{same_ids} of {n}", f"{same_out} of {n}", f"{same_plan} of {n}"


def quality(sc: Scene, r: Run, step: int = 1) -> dict[str, float]:
    """ID switches, objects never confirmed, objects split over confirmed tracks, false confirmed tracks, prediction error."""
    switches = 0
    owners: dict[int, set[int]] = defaultdict(set)
    for tid, objs in r.track_objects.items():
        if tid not in r.confirmed:
            continue
        switches += sum(a != b for a, b in pairwise(objs))
        counts = Counter(objs)
        for o, c in counts.items():
            if c >= 2:
                owners[o].add(tid)
    seen = Counter(int(o) for k in range(0, len(sc.truth), step) for o in sc.truth[k].tolist() if o >= 0)
    twice = [o for o, c in seen.items() if c >= 2]
    real = {tid for tid, objs in r.track_objects.items() if objs}
    err = np.asarray(r.pred_err_mm) if r.pred_err_mm else np.zeros(1)
    return {
        "switches": switches,
        "objects": len(twice),
        "missed": sum(1 for o in twice if o not in owners),
        "split": sum(len(t) - 1 for t in owners.values() if len(t) > 1),
        "false": len(r.confirmed - real),
        "err_p50": float(np.percentile(err, 50)),
        "err_p95": float(np.percentile(err, 95)),
    }


# ---------------------------------------------------------------------- report


def table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print(" | ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of the tracker to compare with, or 'none'")
    ap.add_argument("--sizes", default="10,30,60,100", help="objects in view, comma-separated")
    ap.add_argument(
        "--require-identical", action="store_true", help="exit with status 1 unless every output equals the 'before' tracker's"
    )
    args = ap.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    mods: dict[str, Stages] = {}
    before = None if args.before == "none" else load_before(args.before)
    if before is not None:
        mods["before"] = before
    mods["after"] = Stages(sorter.track, sorter.schedule)
    import scipy

    print(
        f"BeltTracker.update, {args.frames} frames per row at {FPS:g} fps, {SPEED_MM_S:g} mm/s; "
        f"numpy {np.__version__}, scipy {scipy.__version__}, Python {sys.version.split()[0]}"
    )
    impl = {k: getattr(make_tracker(m.track), "compiled", False) for k, m in mods.items()}
    if impl["after"]:
        import numba

        print(f"after: compiled kernels (numba {numba.__version__}); SORTER_TRACKER_KERNELS=numpy runs the numpy ones")
    else:
        print("after: the numpy implementation (numba missing, or SORTER_TRACKER_KERNELS=numpy)")
    if before is not None:
        kind = "compiled kernels" if impl["before"] else "numpy"
        print(f"before: sorter/track at revision {args.before} ({kind}); after: this checkout; run interleaved frame by frame")
    print(f"load average at start: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    print()
    names = list(mods)
    timing_rows, cpu_rows, plan_rows, quality_rows, same_rows, low_rows = [], [], [], [], [], []
    for n in sizes:
        sc = scene(n, args.frames, args.seed)
        runs = run_trackers(sc, mods, keep=before is not None)
        dets = float(np.mean([len(m) for m in sc.frames[200:]]))
        live = float(np.mean(runs["after"].live))
        wall = {k: (np.percentile(r.wall_ms, 50), np.percentile(r.wall_ms, 99)) for k, r in runs.items()}
        cpu = {k: (np.percentile(r.cpu_ms, 50), np.percentile(r.cpu_ms, 99)) for k, r in runs.items()}
        cells_w = [f"{wall[k][i]:.3f}" for k in names for i in (0, 1)]
        cells_c = [f"{cpu[k][i]:.3f}" for k in names for i in (0, 1)]
        ratio_w = [f"{wall['before'][0] / wall['after'][0]:.1f}x"] if before is not None else []
        ratio_c = [f"{cpu['before'][0] / cpu['after'][0]:.1f}x"] if before is not None else []
        timing_rows.append((f"{n}", f"{dets:.1f}", f"{live:.1f}", *cells_w, *ratio_w))
        export = [f"{np.percentile(runs[k].export_ms, 50):.3f}" if runs[k].export_ms else "-" for k in names]
        cpu_rows.append((f"{n}", *cells_c, *ratio_c, *export))
        plan = {k: (np.percentile(r.plan_ms, 50), np.percentile(r.plan_ms, 99)) for k, r in runs.items()}
        both = {k: np.percentile(np.add(r.cpu_ms, r.plan_ms), 50) for k, r in runs.items()}
        plan_rows.append((f"{n}", *(f"{plan[k][i]:.3f}" for k in names for i in (0, 1)), *(f"{both[k]:.3f}" for k in names)))
        for k in names:
            q = quality(sc, runs[k])
            quality_rows.append(
                (
                    f"{n}",
                    k,
                    f"{q['switches']}",
                    f"{q['missed']} of {q['objects']}",
                    f"{q['split']}",
                    f"{q['false']}",
                    f"{q['err_p50']:.2f} / {q['err_p95']:.2f}",
                )
            )
        if before is not None:
            same_rows.append((f"{n}", f"{FPS:g}", *identical(runs)))
        for fps in (15.0, 10.0):
            step = round(FPS / fps)
            low = run_trackers(sc, mods, step=step, warm=0, keep=before is not None)
            if before is not None:
                same_rows.append((f"{n}", f"{fps:g}", *identical(low)))
            for k in names:
                q = quality(sc, low[k], step)
                share = 1.0 - q["missed"] / max(q["objects"], 1)
                low_rows.append((f"{n}", f"{fps:g}", k, f"{share:.3f}", f"{q['false']}", f"{q['switches']}"))
    pairs = [f"{k} {s}" for k in names for s in ("p50", "p99")]
    speed = ["p50 speed-up"] if before is not None else []
    print("time per update, wall clock (ms)")
    table(("objects in view", "detections/frame", "live tracks", *pairs, *speed), timing_rows)
    print("time per update, CPU time of the thread (ms)")
    table(("objects in view", *pairs, *speed, *(f"{k} export p50" for k in names)), cpu_rows)
    print(f"planner fed with each update's output (air jets, line at {Y_EJECT_MM:g} mm), CPU time of the thread (ms)")
    table(("objects in view", *(f"plan {c}" for c in pairs), *(f"{k} track+plan p50" for k in names)), plan_rows)
    if same_rows:
        print("identical before/after, frames: the track of every measurement; outputs: every field of every live and")
        print("retired track, bit for bit; plans: every command and decision")
        table(("objects in view", "fps", "same assignments", "same outputs", "same plans"), same_rows)
    print(f"quality at {FPS:g} fps (prediction error: confirmed tracks, {AHEAD_S * 1e3:g} ms ahead, against truth)")
    head = ("objects in view", "tracker", "ID switches", "objects never confirmed", "objects split", "false confirmed")
    table((*head, "pred. err p50 / p95 mm"), quality_rows)
    print("confirmation at low frame rates: same scenes, every 4th / 6th frame processed (objects seen at least twice)")
    table(("objects in view", "fps", "tracker", "share confirmed", "false confirmed", "ID switches"), low_rows)
    print(f"load average at end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if args.require_identical and any(c.split()[0] != c.split()[-1] for row in same_rows for c in row[2:]):
        print("outputs differ from the 'before' tracker's (--require-identical)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
