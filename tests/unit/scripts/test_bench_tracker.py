"""The tracker benchmark's comparison of two revisions (``scripts/bench_tracker.py``): equal outputs are found equal,
a change in the last bit of one field or in a Python type is not."""

from __future__ import annotations

import dataclasses
from types import ModuleType

import numpy as np
from script_module import load_script

import sorter.schedule
import sorter.track
from sorter.track import TrackerOutput


def _bench() -> ModuleType:
    return load_script("bench_tracker")


def test_two_runs_of_one_revision_are_identical_frame_by_frame() -> None:
    bench = _bench()
    stages = bench.Stages(sorter.track, sorter.schedule)
    scene = bench.scene(30, 120, seed=1)
    runs = bench.run_trackers(scene, {"before": stages, "after": stages}, warm=0, keep=True)
    assert bench.identical(runs) == ("120 of 120", "120 of 120", "120 of 120")
    assert sum(len(p.decisions) for p in runs["after"].plans) > 0  # the planner had something to decide


def test_the_output_digest_sees_one_bit_and_a_numpy_scalar() -> None:
    bench = _bench()
    scene = bench.scene(10, 30, seed=2)
    tracker = bench.make_tracker(sorter.track)
    for meas in scene.frames:
        out = tracker.update(meas)
    tracks = list(out.active)
    assert tracks
    same = TrackerOutput(active=tuple(tracks), retired=out.retired, meas_track_ids=out.meas_track_ids)  # type: ignore[arg-type]
    assert bench.output_digest(same) == bench.output_digest(out)
    first = tracks[0]
    for changed in (
        dataclasses.replace(first, u_mm=float(np.nextafter(first.u_mm, np.inf))),
        dataclasses.replace(first, hits=np.int64(first.hits)),  # type: ignore[arg-type]
    ):
        other = TrackerOutput(active=(changed, *tracks[1:]), retired=out.retired, meas_track_ids=out.meas_track_ids)  # type: ignore[arg-type]
        assert bench.output_digest(other) != bench.output_digest(out)
