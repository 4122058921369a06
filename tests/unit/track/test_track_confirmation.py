"""Confirmation on evidence (detections over belt travel), not on a frame count.

Deterministic synthetic measurements: the tracker takes every time and
odometer value from the measurements, never from a clock.
"""

from __future__ import annotations

import numpy as np
import pytest

from sorter.entities import BeltMeasurements, Track
from sorter.track import BeltTracker, TrackerParams

SPEED_MM_S = 2500.0
VIEW_Y_MM = (-360.0, 360.0)
PARAMS = TrackerParams(view_y_min_mm=VIEW_Y_MM[0], view_y_max_mm=VIEW_Y_MM[1])


def _meas(t_ns: int, pts: list[tuple[float, float]], score: float = 0.8, speed_mm_s: float = SPEED_MM_S) -> BeltMeasurements:
    """One frame: boxes of 80 x 60 mm at world ``(x_mm, y_w_mm)``; odometer from the belt speed."""
    n = len(pts)
    return BeltMeasurements(
        t_capture_ns=t_ns,
        s_capture_mm=speed_mm_s * t_ns / 1e9,
        x_mm=np.array([p[0] for p in pts], np.float64),
        y_w_mm=np.array([p[1] for p in pts], np.float64),
        length_mm=np.full(n, 80.0),
        width_mm=np.full(n, 60.0),
        scores=np.full(n, score),
        class_ids=np.zeros(n, np.int32),
    )


def _object_at(u_mm: float, t_ns: int, speed_mm_s: float = SPEED_MM_S) -> tuple[float, float]:
    """World position of an object lying still at belt-fixed ``u_mm``, x 500 mm."""
    return 500.0, u_mm + speed_mm_s * t_ns / 1e9


def _run(tracker: BeltTracker, fps: float, seen: list[bool], u_mm: float = -200.0) -> list[Track]:
    """Show one still object in the frames where ``seen`` is true; return the last output's tracks, retired included."""
    dt_ns = round(1e9 / fps)
    tracks: dict[int, Track] = {}
    for k, visible in enumerate(seen):
        t = k * dt_ns
        out = tracker.update(_meas(t, [_object_at(u_mm, t)] if visible else []))
        tracks.update({tr.track_id: tr for tr in (*out.retired, *out.active)})
    return list(tracks.values())


@pytest.mark.parametrize(
    ("fps", "confirmed_by_two"), [(60.0, False), (30.0, False), (20.0, True), (15.0, True), (12.0, True), (10.0, True)]
)
def test_two_views_far_apart_in_travel_confirm(fps: float, confirmed_by_two: bool) -> None:
    # at 2.5 m/s a frame step is 42 mm at 60 fps, 167 mm at 15 fps: two views of one belt position
    # 120 mm apart or more are evidence; closer ones (a fast loop) wait for min_hits
    tracks = _run(BeltTracker(PARAMS), fps, [True, True])
    assert len(tracks) == 1 and tracks[0].hits == 2
    assert tracks[0].confirmed is confirmed_by_two
    tracks = _run(BeltTracker(PARAMS), fps, [True, True, True])
    assert len(tracks) == 1 and tracks[0].confirmed  # min_hits confirms at any frame rate


@pytest.mark.parametrize("fps", [60.0, 15.0, 10.0])
def test_a_single_view_never_confirms_by_default(fps: float) -> None:
    tracks = _run(BeltTracker(PARAMS), fps, [True, False, False, False, False, False, False, False, False, False])
    assert len(tracks) == 1 and not tracks[0].confirmed


def test_a_missed_frame_breaks_the_run() -> None:
    # seen, missed, seen at 15 fps: no run of two consecutive views; the first track is retired
    # (333 mm unseen > 250 mm for a tentative track) and the second starts alone
    tracks = _run(BeltTracker(PARAMS), 15.0, [True, False, True])
    assert [t.confirmed for t in tracks] == [False, False]


@pytest.mark.parametrize("fps", [6.0, 4.0])
def test_a_track_gets_the_next_frame_however_slow(fps: float) -> None:
    # 417 or 625 mm per frame: more than every unseen-travel limit (250 tentative, 400 confirmed);
    # a track seen in the previous frame is still matched, and two views confirm it
    tracks = _run(BeltTracker(PARAMS), fps, [True, True, False, False], u_mm=-320.0)  # in view in both frames
    assert len(tracks) == 1
    assert tracks[0].hits == 2 and tracks[0].confirmed
    # and it is retired once a frame passed without it
    tracker = BeltTracker(PARAMS)
    dt_ns = round(1e9 / fps)
    outs = [tracker.update(_meas(k * dt_ns, [_object_at(-320.0, k * dt_ns)] if k < 2 else [])) for k in range(4)]
    assert [len(o.retired) for o in outs] == [0, 0, 0, 1]


@pytest.mark.parametrize("fps", [60.0, 15.0, 10.0])
def test_an_artefact_fixed_in_the_image_is_never_confirmed(fps: float) -> None:
    # glare at one world position in every frame: in belt-fixed coordinates it moves by the travel
    tracker = BeltTracker(PARAMS)
    dt_ns = round(1e9 / fps)
    tracks: dict[int, Track] = {}
    for k in range(int(2 * fps)):
        out = tracker.update(_meas(k * dt_ns, [(300.0, 100.0)]))
        tracks.update({tr.track_id: tr for tr in (*out.retired, *out.active)})
    assert len(tracks) == int(2 * fps)  # a new track every frame
    assert not any(t.confirmed for t in tracks.values())


def test_an_artefact_on_a_stopped_belt_is_confirmed_by_min_hits_only() -> None:
    # no travel, no travel evidence: min_hits decides, as it always did
    tracker = BeltTracker(PARAMS)
    confirmed = []
    for k in range(4):
        out = tracker.update(_meas(k * 100_000_000, [(300.0, 100.0)], speed_mm_s=0.0))
        confirmed.append(out.active[0].confirmed)
    assert confirmed == [False, False, True, True]


@pytest.mark.parametrize(
    ("fps", "fp_per_frame", "max_share"), [(15.0, 0.02, 0.0), (10.0, 0.02, 0.0), (15.0, 1.0, 0.01), (10.0, 1.0, 0.01)]
)
def test_random_false_positives_rarely_confirm_at_low_frame_rates(fps: float, fp_per_frame: float, max_share: float) -> None:
    # uniform false positives over the view: two must land in one gate in consecutive frames
    rng = np.random.default_rng(7)
    tracker = BeltTracker(PARAMS)
    dt_ns = round(1e9 / fps)
    tracks: dict[int, Track] = {}
    for k in range(int(120 * fps)):
        n = int(rng.poisson(fp_per_frame))
        pts = list(zip(rng.uniform(50.0, 1150.0, n).tolist(), rng.uniform(*VIEW_Y_MM, n).tolist(), strict=True))
        out = tracker.update(_meas(k * dt_ns, pts))
        tracks.update({tr.track_id: tr for tr in (*out.retired, *out.active)})
    n_false = len(tracks)
    assert n_false > 0.8 * fp_per_frame * 120 * fps
    assert sum(t.confirmed for t in tracks.values()) <= max_share * n_false


def test_a_high_score_confirms_a_single_view_when_enabled() -> None:
    params = TrackerParams(view_y_min_mm=VIEW_Y_MM[0], view_y_max_mm=VIEW_Y_MM[1], confirm_single_score=0.9)
    out = BeltTracker(params).update(_meas(0, [(300.0, 0.0), (700.0, 0.0)], score=0.95))
    assert [t.confirmed for t in out.active] == [True, True]
    out = BeltTracker(params).update(_meas(0, [(300.0, 0.0)], score=0.85))
    assert [t.confirmed for t in out.active] == [False]


def test_travel_rule_off_restores_frame_count_confirmation() -> None:
    # confirm_hits >= min_hits: only min_hits confirms, whatever the travel
    params = TrackerParams(view_y_min_mm=VIEW_Y_MM[0], view_y_max_mm=VIEW_Y_MM[1], confirm_hits=3)
    tracks = _run(BeltTracker(params), 10.0, [True, True])
    assert len(tracks) == 1 and not tracks[0].confirmed


def test_parameter_checks() -> None:
    with pytest.raises(ValueError, match="confirm_hits"):
        TrackerParams(confirm_hits=0)
    with pytest.raises(ValueError, match="confirm_travel_mm"):
        TrackerParams(confirm_travel_mm=-1.0)
    with pytest.raises(ValueError, match="confirm_single_score"):
        TrackerParams(confirm_single_score=1.5)
