"""Work done per tracker update: counters instead of timings, and the read-only columns it hands out.

Speed itself is measured by ``scripts/bench_tracker.py``; here the counters
that the time is proportional to are checked on deterministic scenes.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from sorter.entities import BeltMeasurements, Track, TrackColumns
from sorter.track import BeltTracker, TrackerParams

SPEED_MM_S = 2500.0
FPS = 60.0
VIEW_Y_MM = (-360.0, 360.0)
PARAMS = TrackerParams(view_y_min_mm=VIEW_Y_MM[0], view_y_max_mm=VIEW_Y_MM[1])
TRACK_FIELDS = [f.name for f in dataclasses.fields(Track)]


def _grid_frame(k: int, rng: np.random.Generator, missed: frozenset[int] = frozenset()) -> BeltMeasurements:
    """Frame ``k`` of a dense belt: objects every 120 mm along and across, 3 mm noise."""
    s = SPEED_MM_S * k / FPS
    u = -np.arange(0.0, 6000.0, 120.0) - 300.0
    uu, xx = np.meshgrid(u, np.arange(100.0, 1150.0, 120.0))
    y = uu.ravel() + s
    x = xx.ravel()
    idx = np.array([i for i in np.flatnonzero((y - 40 >= VIEW_Y_MM[0]) & (y + 40 <= VIEW_Y_MM[1])) if i not in missed], np.int64)
    n = idx.size
    return BeltMeasurements(
        t_capture_ns=round(k * 1e9 / FPS),
        s_capture_mm=s,
        x_mm=x[idx] + rng.normal(0, 3.0, n),
        y_w_mm=y[idx] + rng.normal(0, 3.0, n),
        length_mm=np.full(n, 80.0),
        width_mm=np.full(n, 60.0),
        scores=np.full(n, 0.9),
        class_ids=np.zeros(n, np.int32),
    )


def test_work_grows_with_gated_pairs_not_with_tracks_times_measurements() -> None:
    rng = np.random.default_rng(0)
    tracker = BeltTracker(PARAMS)
    for k in range(120):
        tracker.update(_grid_frame(k, rng))
        st = tracker.stats
        if k >= 30:  # steady state: 36 to 54 objects in view
            assert st.n_measurements >= 36 and st.n_tracks >= st.n_measurements
            assert st.n_pairs == st.n_matched  # at most one gated pair per measurement: no cost, no solver
            assert st.n_solved == 0
            assert st.n_matched + st.n_new == st.n_measurements


def test_unmatched_tracks_keep_their_values_and_handed_out_columns_never_change() -> None:
    rng = np.random.default_rng(1)
    tracker = BeltTracker(PARAMS)
    for k in range(20):
        out = tracker.update(_grid_frame(k, rng))
    before = {t.track_id: t for t in out.active}
    kept = {name: getattr(out.active, name).copy() for name in TRACK_FIELDS}
    later = tracker.update(_grid_frame(20, rng, missed=frozenset(range(0, 300, 7))))  # some objects not detected
    after = {t.track_id: t for t in later.active}
    unchanged = [tid for tid, t in after.items() if tid in before and t.t_last_ns == before[tid].t_last_ns]
    assert unchanged, "the frame should leave some tracks unmatched"
    assert all(after[tid] == before[tid] for tid in unchanged)  # field for field the same track
    # what the first update handed out is a copy: the second one changed none of it, and nobody can write to it
    assert all(np.array_equal(getattr(out.active, name), kept[name]) for name in TRACK_FIELDS)
    with pytest.raises(ValueError, match="read-only"):
        out.active.u_mm[0] = 0.0


def test_retired_tracks_are_their_last_live_version() -> None:
    rng = np.random.default_rng(3)
    tracker = BeltTracker(PARAMS)
    last_seen: dict[int, Track] = {}
    n_retired = 0
    for k in range(90):
        out = tracker.update(_grid_frame(k, rng))
        for t in out.retired:
            assert t == last_seen[t.track_id]
            n_retired += 1
        assert tracker.stats.n_retired == len(out.retired)
        last_seen.update((t.track_id, t) for t in out.active)
    assert n_retired > 20


def test_touching_objects_go_to_the_solver() -> None:
    # two overlapping objects 20 mm apart across the belt: each detection gates both tracks
    tracker = BeltTracker(PARAMS)
    solved = []
    for k in range(20):
        s = SPEED_MM_S * k / FPS
        meas = BeltMeasurements(
            t_capture_ns=round(k * 1e9 / FPS),
            s_capture_mm=s,
            x_mm=np.array([500.0, 520.0]),
            y_w_mm=np.array([-200.0 + s, -200.0 + s]),
            length_mm=np.full(2, 80.0),
            width_mm=np.full(2, 60.0),
            scores=np.full(2, 0.9),
            class_ids=np.array([0, 1], np.int32),
        )
        out = tracker.update(meas)
        solved.append(tracker.stats.n_solved)
        assert len(out.active) == 2 and out.meas_track_ids == (1, 2)  # never swapped
    assert max(solved) == 4


def test_track_columns_build_the_tracks_they_were_taken_from() -> None:
    rng = np.random.default_rng(2)
    n = 7

    def random_track(track_id: int) -> Track:
        u, x, du, dx, length, width, sigma_u, sigma_x, s_ref = rng.normal(0, 100, 9).tolist()
        t_first, t_last = sorted(rng.integers(0, 10**12, 2).tolist())
        votes = tuple(rng.random(6).tolist())
        hits, confirmed = int(rng.integers(1, 50)), bool(rng.integers(0, 2))
        class_id, confidence = int(rng.integers(0, 6)), float(rng.random())
        return Track(
            track_id, class_id, confidence, votes, u, x, du, dx, length, width, sigma_u, sigma_x, s_ref, t_first, t_last, hits,
            confirmed,
        )  # fmt: skip

    tracks = [random_track(k + 1) for k in range(n)]
    cols = TrackColumns.of(tracks)
    assert len(cols) == n and TrackColumns.of(cols) is cols
    assert list(cols) == tracks and [cols[k] for k in range(n)] == tracks and cols[-1] == tracks[-1] and cols[2:4] == tracks[2:4]
    # the same Python types as the entities they came from, not numpy scalars
    for built in (cols[0], next(iter(cols))):
        assert [type(getattr(built, name)) for name in TRACK_FIELDS] == [type(getattr(tracks[0], name)) for name in TRACK_FIELDS]
    assert cols.class_votes.shape == (n, 6) and cols.confirmed.dtype == np.bool_
    assert all(not getattr(cols, name).flags.writeable for name in TRACK_FIELDS)
    with pytest.raises(IndexError):
        cols[n]
    assert len(TrackColumns.of([])) == 0 and list(TrackColumns.of([])) == []


def test_the_solver_is_imported_at_construction_not_at_import_nor_in_a_frame() -> None:
    # scipy.optimize takes about a second to import on a small CPU: not for `import sorter`, and
    # not in the middle of the first frame with touching objects either
    code = (
        "import sys\n"
        "import sorter.track\n"
        "print('scipy.optimize' in sys.modules)\n"
        "sorter.track.BeltTracker()\n"
        "print('scipy.optimize' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["False", "True"]
