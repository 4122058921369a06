"""Robot pick planner: reach window, pick-rate limit, value choice, never late."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from sorter.entities import PickCommand, Track
from sorter.schedule import Decision, PolicyParams, RobotParams, RobotPlanner
from sorter.schedule.robot import earliest_slot

SPEED = 2500.0
FPS = 60.0


def track(track_id: int = 1, u_mm: float = -1000.0, x_mm: float = 600.0, s_ref_mm: float = 1350.0, **kw: object) -> Track:
    fields: dict[str, object] = {
        "class_id": 0,
        "class_confidence": 0.9,
        "class_votes": (9.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        "du_per_mm": 0.0,
        "dx_per_mm": 0.0,
        "length_mm": 100.0,
        "width_mm": 80.0,
        "sigma_u_mm": 2.0,
        "sigma_x_mm": 2.0,
        "t_first_ns": 0,
        "t_last_ns": 0,
        "hits": 12,
        "confirmed": True,
    }
    fields.update(kw)
    return Track(track_id=track_id, u_mm=u_mm, x_mm=x_mm, s_ref_mm=s_ref_mm, **fields)  # type: ignore[arg-type]


def run(
    planner: RobotPlanner, objects: list[Track], n_frames: int, speed: float = SPEED
) -> tuple[list[PickCommand], list[Decision], list[float]]:
    """Emulate the tracker (refined in view, retired 400 mm after leaving it) and plan every frame.

    Returns the picks, the decisions and the odometer at which each pick was issued.
    """
    picks: list[PickCommand] = []
    decisions: list[Decision] = []
    issued_at: list[float] = []
    retired_ids: set[int] = set()
    for k in range(n_frames):
        s = k * speed / FPS
        active, retired = [], []
        for o in objects:
            if o.u_mm + s < -360.0:
                continue
            s_last = min(s, 360.0 - o.u_mm)
            tr = dataclasses.replace(o, s_ref_mm=s_last)
            if s - s_last > 400.0:
                if o.track_id not in retired_ids:
                    retired_ids.add(o.track_id)
                    retired.append(tr)
                continue
            active.append(tr)
        res = planner.plan(active, retired, s, speed, k)
        for c in res.commands:
            assert isinstance(c, PickCommand)
            picks.append(c)
            issued_at.append(s)
        decisions += res.decisions
    return picks, decisions, issued_at


def test_earliest_slot() -> None:
    assert earliest_slot(100.0, 500.0, [], 50.0) == 100.0
    assert earliest_slot(100.0, 500.0, [120.0], 50.0) == 170.0
    assert earliest_slot(100.0, 500.0, [20.0, 120.0, 200.0], 50.0) == 250.0
    assert earliest_slot(100.0, 500.0, [160.0], 50.0) == 100.0  # fits before it
    assert earliest_slot(100.0, 200.0, [120.0, 200.0], 50.0) is None
    assert earliest_slot(100.0, 500.0, [-1000.0, 1000.0], 50.0) == 100.0


def test_picks_inside_the_reachable_window_only() -> None:
    params = RobotParams(window_y_start_mm=900.0, window_y_end_mm=1700.0, x_min_mm=50.0, x_max_mm=1150.0)
    objects = [
        track(track_id=1, u_mm=-500.0, x_mm=600.0),
        track(track_id=2, u_mm=-3500.0, x_mm=1120.0, du_per_mm=0.016, dx_per_mm=0.02),  # sliding out of reach
        track(track_id=3, u_mm=-6500.0, x_mm=20.0),  # never reachable
        track(track_id=4, u_mm=-9500.0, x_mm=100.0, du_per_mm=-0.016, dx_per_mm=-0.05),
    ]
    picks, decisions, issued_at = run(RobotPlanner(params), objects, 300)
    assert {d.track_id: d.action for d in decisions} == {1: "pick", 2: "pick", 3: "skip", 4: "pick"}
    by_id = {o.track_id: o for o in objects}
    for c, s_issue in zip(picks, issued_at, strict=True):
        o = by_id[c.track_id]
        y, x, _, _ = dataclasses.replace(o, s_ref_mm=360.0 - o.u_mm).predict(c.s_pick_mm)
        m = params.edge_margin_mm - 1e-6  # planned inside the window by a margin
        assert params.window_y_start_mm + m <= c.u_mm + c.s_pick_mm <= params.window_y_end_mm - m
        assert c.u_mm + c.s_pick_mm == pytest.approx(y) and c.x_mm == pytest.approx(x)
        assert params.x_min_mm + m <= c.x_mm <= params.x_max_mm - m
        assert c.s_pick_mm > s_issue + params.safety_margin_mm  # never late
        assert s_issue >= c.s_pick_mm - params.commit_before_mm - SPEED / FPS
    assert "reach" in next(d.reason for d in decisions if d.track_id == 3)


def test_pick_rate_limit_is_respected() -> None:
    params = RobotParams(max_picks_per_min=60.0)  # one pick a second: 2500 mm of travel
    objects = [track(track_id=i + 1, u_mm=-500.0 - 300.0 * i, x_mm=200.0 + (25.0 * i) % 900.0) for i in range(60)]
    picks, decisions, _ = run(RobotPlanner(params), objects, 500)
    s_picks = sorted(c.s_pick_mm for c in picks)
    spacing = 60.0 / params.max_picks_per_min * SPEED
    assert all(b - a >= spacing - 1e-6 for a, b in itertools.pairwise(s_picks))
    # one decision per object; every target either picked, skipped by the rate limit, or late
    assert sorted(d.track_id for d in decisions) == [o.track_id for o in objects]
    assert len(picks) + sum(d.action in ("skip", "late") for d in decisions) == len(objects)
    assert all("rate limit" in d.reason for d in decisions if d.action == "skip")
    # the robot is kept busy: about one pick per spacing of travel
    span = max(s_picks) - min(s_picks)
    assert len(picks) >= span / spacing
    ids = [c.command_id for c in picks]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


@pytest.mark.parametrize("valuable_first", [True, False])
@pytest.mark.parametrize("valuable_class", [0, 2])
def test_oversubscribed_robot_picks_the_more_valuable_target(valuable_class: int, valuable_first: bool) -> None:
    params = RobotParams(values={valuable_class: 5.0}, policy=PolicyParams(target_class_ids=frozenset({0, 2})))
    other_class = 2 if valuable_class == 0 else 0
    lead_class, follow_class = (valuable_class, other_class) if valuable_first else (other_class, valuable_class)
    votes = {c: tuple(9.0 if k == c else 0.0 for k in range(6)) for c in (0, 2)}
    # 100 mm apart: both fit the window but not two picks a second apart
    a = track(track_id=1, u_mm=-500.0, x_mm=300.0, class_id=lead_class, class_votes=votes[lead_class])
    b = track(track_id=2, u_mm=-600.0, x_mm=800.0, class_id=follow_class, class_votes=votes[follow_class])
    picks, decisions, _ = run(RobotPlanner(params), [a, b], 200)
    assert [c.class_id for c in picks] == [valuable_class]
    assert picks[0].value == 5.0
    skipped = [d for d in decisions if d.action == "skip"]
    assert [d.class_id for d in skipped] == [other_class]


def test_a_target_seen_too_late_is_dropped_and_counted() -> None:
    planner = RobotPlanner(RobotParams(window_y_end_mm=1700.0, safety_margin_mm=20.0))
    tr = track(u_mm=-1000.0, s_ref_mm=2690.0)  # centre at y = 1690, 10 mm before the window ends
    res = planner.plan([], [tr], 2690.0, SPEED, 0)
    assert res.commands == () and res.late_dropped == 1 and res.decisions[0].action == "late"
    res = planner.plan([tr], [tr], 2700.0, SPEED, 0)
    assert res.decisions == () and res.late_dropped == 0


def test_non_targets_are_decided_once() -> None:
    planner = RobotPlanner(RobotParams())
    tr = track(class_id=4, class_votes=(0, 0, 0, 0, 9.0, 0))
    res = planner.plan([tr], [], 1400.0, SPEED, 0)
    assert [d.action for d in res.decisions] == ["not_target"] and res.skipped == 0
    assert planner.plan([tr], [tr], 1450.0, SPEED, 0).decisions == ()


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="window_y_end_mm"):
        RobotParams(window_y_start_mm=1000.0, window_y_end_mm=900.0)
    with pytest.raises(ValueError, match="max_picks_per_min"):
        RobotParams(max_picks_per_min=0.0)
