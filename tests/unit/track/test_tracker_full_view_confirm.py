"""A track is confirmed only once it holds a box not cut at an end of the camera view.

An object entering the view shows a growing part of itself. When its first few
boxes start a track that its first full view does not continue (the detector's
box jumped), the cut-only track must not be acted upon: retired a few frames
later, it would send a pick or a shot to a place where nothing is.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sorter.entities import BeltMeasurements
from sorter.track import BeltTracker, TrackerParams

VIEW_Y_MM = (-360.0, 360.0)
PARAMS = TrackerParams(view_y_min_mm=VIEW_Y_MM[0], view_y_max_mm=VIEW_Y_MM[1])
STEP_MM = 1000.0 / 60.0  # 1 m/s at 60 fps


def box(k: int, y_w_mm: float, length_mm: float, x_mm: float = 600.0) -> BeltMeasurements:
    """One detection in frame ``k``."""
    return BeltMeasurements(
        t_capture_ns=round(k / 60.0 * 1e9),
        s_capture_mm=k * STEP_MM,
        x_mm=np.array([x_mm]),
        y_w_mm=np.array([y_w_mm]),
        length_mm=np.array([length_mm]),
        width_mm=np.array([80.0]),
        scores=np.array([0.8]),
        class_ids=np.array([0], np.int32),
    )


def entering(k: int, length_mm: float = 200.0) -> BeltMeasurements:
    """Frame ``k`` of an object riding the belt into the view: the box covers the part in view.

    Its front is 60 mm inside the upstream end at frame 0; it is cut (its box touches the end) up to frame 9
    and in full view from frame 10.
    """
    front = VIEW_Y_MM[0] + 60.0 + k * STEP_MM
    rear = max(front - length_mm, VIEW_Y_MM[0])
    return box(k, (rear + front) / 2.0, front - rear)


def confirmed_by_id(tracker: BeltTracker, meas: BeltMeasurements) -> dict[int, bool]:
    out = tracker.update(meas)
    return {t.track_id: t.confirmed for t in (*out.active, *out.retired)}


def test_cut_boxes_alone_do_not_confirm_and_the_first_full_view_does() -> None:
    tracker = BeltTracker(PARAMS)
    for k in range(10):  # ten boxes, all cut at the upstream end: far more than min_hits
        state = confirmed_by_id(tracker, entering(k))
        assert state == {1: False}, (k, state)
    assert entering(10).length_mm[0] == 200.0
    assert confirmed_by_id(tracker, entering(10)) == {1: True}  # its first full view, on the same track


def test_a_cut_only_track_left_behind_by_a_jump_is_retired_unconfirmed() -> None:
    tracker = BeltTracker(PARAMS)
    for k in range(3):
        confirmed_by_id(tracker, entering(k))
    # the full view lands far from where the cut track predicted it (a box that jumped): a new track
    retired: dict[int, bool] = {}
    for k in range(3, 40):
        y = -150.0 + (k - 3) * STEP_MM
        out = tracker.update(box(k, y, 200.0, x_mm=750.0))
        retired.update({t.track_id: t.confirmed for t in out.retired})
        live = {t.track_id: t.confirmed for t in out.active}
    assert retired == {1: False}  # the cut-only track was never confirmed: nothing acts on it
    assert live == {2: True}


def test_without_the_rule_cut_boxes_confirm_as_before() -> None:
    tracker = BeltTracker(dataclasses.replace(PARAMS, confirm_needs_full_view=False))
    states = [confirmed_by_id(tracker, entering(k)) for k in range(3)]
    assert [s[1] for s in states] == [False, False, True]  # min_hits = 3


def test_a_tracker_that_does_not_know_the_view_ends_confirms_on_hits() -> None:
    tracker = BeltTracker(TrackerParams())  # no view ends: no box is known to be cut
    states = [confirmed_by_id(tracker, entering(k)) for k in range(3)]
    assert [s[1] for s in states] == [False, False, True]
