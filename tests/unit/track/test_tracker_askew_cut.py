"""Boxes cut at a view end of objects lying askew: their lateral centre is the visible part's, not the object's.

A detector boxes the pixels it sees. When an object lying diagonally on the
belt is cut by an end of the camera view, the visible part lies towards one
side, so the box's lateral centre moves with the cut (by ``skew`` mm per mm of
along-belt offset of the visible part's centre). Such boxes must not move the
track's lateral position or teach it a lateral drift: a pick robot acting a
metre or more downstream of the view misses by the invented drift.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from sorter.entities import BeltMeasurements, Track
from sorter.track import BeltTracker, TrackerParams

VIEW_Y_MM = (-360.0, 360.0)
SPEED_MM_S = 1000.0
FPS = 60.0
#: the tracker as the runtime configures it: it knows where the camera view ends
PARAMS = TrackerParams(view_y_min_mm=VIEW_Y_MM[0], view_y_max_mm=VIEW_Y_MM[1])
#: a pick this far downstream of the view's end (the middle of a robot's reach window)
PICK_Y_MM = 1400.0


def askew_frames(
    x_true_mm: float, skew: float, length_mm: float, width_mm: float, seed: int, enters: bool = True
) -> Iterator[BeltMeasurements]:
    """One still object crossing the view; boxes cut at a view end have the visible part's lateral centre.

    ``enters``: it enters the view (first boxes cut at the upstream end), else it is in full view in the
    first frame and only its leaving is cut.
    """
    rng = np.random.default_rng(seed)
    u_mm = -VIEW_Y_MM[1] - length_mm if enters else -VIEW_Y_MM[1] + length_mm
    n_frames = int((VIEW_Y_MM[1] - u_mm + length_mm) / SPEED_MM_S * FPS)
    for k in range(n_frames):
        s_mm = k * SPEED_MM_S / FPS
        y = u_mm + s_mm
        lo = max(y - length_mm / 2.0, VIEW_Y_MM[0])
        hi = min(y + length_mm / 2.0, VIEW_Y_MM[1])
        if hi - lo < 0.5 * length_mm:  # a detector does not report an object under half visible
            continue
        y_box = (lo + hi) / 2.0
        x_box = x_true_mm + skew * (y_box - y)  # the visible part of a diagonal object lies to one side
        yield BeltMeasurements(
            t_capture_ns=round(k / FPS * 1e9),
            s_capture_mm=s_mm,
            x_mm=np.array([x_box + rng.normal(0.0, 1.0)]),
            y_w_mm=np.array([y_box + rng.normal(0.0, 1.0)]),
            length_mm=np.array([hi - lo]),
            width_mm=np.array([width_mm]),
            scores=np.array([0.8]),
            class_ids=np.array([0], np.int32),
        )


def final_track(frames: Iterator[BeltMeasurements]) -> Track:
    """The one track's state after its last measurement (what the planner decides on)."""
    tracker = BeltTracker(PARAMS)
    last: dict[int, Track] = {}
    for meas in frames:
        out = tracker.update(meas)
        assert set(out.meas_track_ids) == {1}, "the object split into several tracks"
        for tr in out.active:
            last[tr.track_id] = tr
    assert list(last) == [1]
    return last[1]


@pytest.mark.parametrize("enters", [False, True])
@pytest.mark.parametrize("skew", [-0.5, -0.3, 0.3, 0.5])
def test_askew_object_cut_at_the_view_ends_keeps_its_lateral_position_and_no_drift(skew: float, enters: bool) -> None:
    x_true_mm = 600.0
    tr = final_track(askew_frames(x_true_mm, skew, length_mm=200.0, width_mm=160.0, seed=7, enters=enters))
    assert tr.dx_per_mm == 0.0  # a still object: no lateral drift invented from the cut views
    s_pick_mm = PICK_Y_MM - tr.u_mm  # where the still object reaches the pick point
    _y, x_pick_mm, _sy, _sx = tr.predict(s_pick_mm)
    assert abs(x_pick_mm - x_true_mm) < 3.0  # a gripper's tolerance is about 15 mm


def test_square_object_is_unaffected() -> None:
    # no skew: cut boxes keep the lateral centre, the track ends where the object is
    tr = final_track(askew_frames(400.0, 0.0, length_mm=120.0, width_mm=120.0, seed=8))
    assert tr.dx_per_mm == 0.0
    assert abs(tr.x_mm - 400.0) < 1.5
