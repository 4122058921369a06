"""Air-jet planner: one decision per object, latency lead, valves, never late, policies."""

from __future__ import annotations

import dataclasses

import pytest

from sorter.entities import FireCommand, Track
from sorter.schedule import AirjetParams, AirjetPlanner, Decision, PolicyParams

Y_EJECT_MM = 1200.0  # the ejection line these scenarios are laid out for (AirjetParams has no default for it)

SPEED = 2500.0
VIEW_END = 360.0


def track(track_id: int = 1, u_mm: float = -1000.0, x_mm: float = 600.0, s_ref_mm: float = 1350.0, **kw: object) -> Track:
    """A confirmed pet_bottle track, last seen at ``s_ref_mm`` (y = u + s_ref)."""
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


def fire(result_commands: tuple[object, ...]) -> list[FireCommand]:
    assert all(isinstance(c, FireCommand) for c in result_commands)
    return list(result_commands)  # type: ignore[arg-type]


def plan_once(planner: AirjetPlanner, tr: Track, s_now: float, speed: float = SPEED, retired: bool = False) -> list[FireCommand]:
    res = planner.plan([] if retired else [tr], [tr] if retired else [], s_now, speed, 123)
    return fire(res.commands)


# ---------------------------------------------------------------------- timing


@pytest.mark.parametrize("speed", [800.0, 2500.0, 4000.0])
def test_latency_lead_is_exactly_speed_times_latency(speed: float) -> None:
    tr = track()
    no_lead = plan_once(AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM, latency_ms=0.0)), tr, 1400.0, speed)
    lead = plan_once(AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM, latency_ms=3.0)), tr, 1400.0, speed)
    assert len(no_lead) == len(lead) == 1
    expected = speed * 3.0e-3
    assert no_lead[0].s_open_mm - lead[0].s_open_mm == pytest.approx(expected, abs=1e-9)
    assert no_lead[0].s_close_mm - lead[0].s_close_mm == pytest.approx(expected, abs=1e-9)
    # the target (diagnostics) is where the object is, not shifted
    assert lead[0].s_target_mm == no_lead[0].s_target_mm == pytest.approx(1200.0 - tr.u_mm)


def test_command_positions_bracket_the_object_on_the_line() -> None:
    tr = track(length_mm=120.0, x_mm=300.0, width_mm=60.0)
    params = AirjetParams(y_eject_mm=Y_EJECT_MM, latency_ms=2.0, margin_mm=10.0)
    (cmd,) = plan_once(AirjetPlanner(params), tr, 1400.0)
    lead = SPEED * 2.0e-3
    # air on before the leading edge reaches the line, off after the trailing edge left it
    assert cmd.s_open_mm + lead <= cmd.s_target_mm - 60.0 - 10.0
    assert cmd.s_close_mm + lead >= cmd.s_target_mm + 60.0 + 10.0
    assert (cmd.s_open_mm + cmd.s_close_mm) / 2 + lead == pytest.approx(cmd.s_target_mm)
    # valves over x 300 +- (30 + 5) mm with 18.75 mm pitch: 265..335 -> valves 14..17
    assert (cmd.valve_first, cmd.valve_last) == (14, 17)
    assert cmd.track_id == tr.track_id and cmd.class_id == 0 and cmd.t_issue_ns == 123


def test_pulse_clamps_in_commands() -> None:
    small = track(track_id=1, length_mm=16.0, width_mm=16.0, sigma_u_mm=0.0)
    big = track(track_id=2, x_mm=300.0, length_mm=650.0)
    params = AirjetParams(y_eject_mm=Y_EJECT_MM, margin_mm=0.0, sigma_k=0.0, min_pulse_ms=10.0, max_pulse_ms=50.0)
    cmds = fire(AirjetPlanner(params).plan([small, big], [], 1400.0, SPEED, 0).commands)
    by_track = {c.track_id: c for c in cmds}
    assert by_track[1].s_close_mm - by_track[1].s_open_mm == pytest.approx(10.0e-3 * SPEED)
    assert by_track[2].s_close_mm - by_track[2].s_open_mm == pytest.approx(50.0e-3 * SPEED)
    lead = SPEED * params.latency_ms / 1000.0
    for c in cmds:
        assert (c.s_open_mm + c.s_close_mm) / 2 + lead == pytest.approx(c.s_target_mm)


# ---------------------------------------------------------------------- valves


@pytest.mark.parametrize(
    ("x_mm", "width_mm", "valves"),
    [
        (10.0, 40.0, (0, 1)),  # at the left edge of the bank: clipped to valve 0
        (1190.0, 40.0, (62, 63)),  # at the right edge: clipped to the last valve
        (37.5, 10.0, (1, 2)),  # centred on the boundary between valves 1 and 2
        (28.125, 2.0, (1, 1)),  # small object between the edges of valve 1
        (600.0, 690.0, (13, 50)),  # 250..950 mm
    ],
)
def test_valve_coverage(x_mm: float, width_mm: float, valves: tuple[int, int]) -> None:
    planner = AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM, lateral_margin_mm=5.0))
    (cmd,) = plan_once(planner, track(x_mm=x_mm, width_mm=width_mm), 1400.0)
    assert (cmd.valve_first, cmd.valve_last) == valves


def test_object_beside_the_bank_is_skipped() -> None:
    # bank covers x 300..900
    planner = AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM, valve_count=32, valve_x_first_mm=300.0))
    res = planner.plan([track(x_mm=150.0, width_mm=100.0)], [], 1400.0, SPEED, 0)
    assert res.commands == () and res.skipped == 1
    assert res.decisions[0].action == "skip" and "valve bank" in res.decisions[0].reason


def test_lateral_residual_motion_moves_the_valves() -> None:
    # seen at x = 600 and sliding 0.05 mm per mm of travel: 850 mm later it is at x = 642.5
    planner = AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM))
    (cmd,) = plan_once(planner, track(x_mm=600.0, width_mm=20.0, dx_per_mm=0.05), 1400.0)
    first, last = (642.5 - 15.0) / 18.75, (642.5 + 15.0) / 18.75
    assert (cmd.valve_first, cmd.valve_last) == (int(first), int(last))


# ---------------------------------------------------------------------- never late


def test_a_track_seen_too_late_gives_no_command() -> None:
    planner = AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM, safety_margin_mm=20.0))
    # confirmed only when its centre is 60 mm before the line: the air would have to open before now
    tr = track(u_mm=-1000.0, s_ref_mm=2140.0)
    res = planner.plan([tr], [], 2140.0, SPEED, 0)
    assert res.commands == ()
    assert res.late_dropped == 1 and res.decisions[0].action == "late"
    # and it stays decided: no command later either
    res = planner.plan([tr], [tr], 2150.0, SPEED, 0)
    assert res.commands == () and res.decisions == () and res.late_dropped == 0


def test_late_boundary_is_the_safety_margin() -> None:
    params = AirjetParams(y_eject_mm=Y_EJECT_MM, safety_margin_mm=20.0)
    tr = track()
    (ref,) = plan_once(AirjetPlanner(params), tr, 1400.0)
    # now such that the opening is exactly the safety margin ahead: late
    s_edge = ref.s_open_mm - 20.0
    res = AirjetPlanner(params).plan([tr], [], s_edge, SPEED, 0)
    assert res.commands == () and res.late_dropped == 1
    res = AirjetPlanner(params).plan([tr], [], s_edge - 0.01, SPEED, 0)
    assert len(res.commands) == 1 and res.late_dropped == 0
    assert fire(res.commands)[0].s_open_mm > s_edge - 0.01 + 20.0


# ---------------------------------------------------------------------- one decision per object


def stream(
    objects: list[Track], s_values: list[float], view_end: float = VIEW_END
) -> list[tuple[list[Track], list[Track], float]]:
    """Emulate the tracker: refined while in view, kept 400 mm of travel unseen, then retired once."""
    out = []
    retired_ids: set[int] = set()
    for s in s_values:
        active, retired = [], []
        for k, o in enumerate(objects):
            y = o.u_mm + s
            if y < -360.0:
                continue
            s_last = min(s, view_end - o.u_mm)
            # state refined at every frame in view: small changes of the estimate
            tr = dataclasses.replace(
                o, s_ref_mm=s_last, u_mm=o.u_mm + 0.1 * (k % 3), hits=min(20, int((s - (-360.0 - o.u_mm)) / 42) + 1)
            )
            tr = dataclasses.replace(tr, confirmed=tr.hits >= 3)
            if s - s_last > 400.0:
                if o.track_id not in retired_ids:
                    retired_ids.add(o.track_id)
                    retired.append(tr)
                continue
            active.append(tr)
        out.append((active, retired, s))
    return out


def test_one_decision_and_at_most_one_command_per_object_over_many_calls() -> None:
    objects = [
        track(track_id=i + 1, u_mm=-600.0 - 170.0 * i, x_mm=100.0 + 90.0 * (i % 12), class_id=i % 3, width_mm=60.0)
        for i in range(40)
    ]
    planner = AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM))
    s_values = [k * SPEED / 60.0 for k in range(400)]
    decisions: list[Decision] = []
    commands: list[FireCommand] = []
    for active, retired, s in stream(objects, s_values):
        res = planner.plan(active, retired, s, SPEED, int(s * 1e3))
        decisions += res.decisions
        commands += fire(res.commands)
        for d in res.decisions:  # decided once the centre left the view, not before
            tr = next(o for o in objects if o.track_id == d.track_id)
            assert tr.u_mm + s > VIEW_END - 1.0
        # handing decided tracks in again (as active and as retired) changes nothing
        decided = {d.track_id for d in decisions}
        again = [t for t in active + retired if t.track_id in decided]
        res = planner.plan(again, again, s, SPEED, 0)
        assert res.commands == () and res.decisions == ()
    assert sorted(d.track_id for d in decisions) == [o.track_id for o in objects]
    targets = [o for o in objects if o.class_id == 0]
    assert sorted(c.track_id for c in commands) == [o.track_id for o in targets]
    assert {d.action for d in decisions if d.class_id != 0} == {"not_target"}
    ids = [c.command_id for c in commands]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # nor do tracks long gone
    res = planner.plan(objects, objects, s_values[-1], SPEED, 0)
    assert res.commands == () and res.decisions == ()


def test_decision_waits_until_the_track_leaves_the_view() -> None:
    planner = AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM, view_end_y_mm=360.0))
    tr = track(u_mm=-1000.0, s_ref_mm=1300.0)  # centre at y = 300
    assert planner.plan([tr], [], 1300.0, SPEED, 0).decisions == ()
    refined = dataclasses.replace(tr, u_mm=-1002.0, s_ref_mm=1350.0)
    res = planner.plan([refined], [], 1365.0, SPEED, 0)
    (cmd,) = fire(res.commands)
    assert cmd.s_target_mm == pytest.approx(1200.0 + 1002.0)  # the refined state was used


def test_unconfirmed_tracks_are_not_decided() -> None:
    planner = AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM))
    tr = track(confirmed=False, hits=2)
    res = planner.plan([tr], [tr], 1400.0, SPEED, 0)
    assert res.decisions == () and res.commands == ()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"class_id": 3, "class_votes": (0, 0, 0, 9.0, 0, 0)}, "not a target"),
        ({"class_confidence": 0.3}, "confidence"),
        ({"length_mm": 10.0, "width_mm": 8.0}, "< min"),
        ({"length_mm": 800.0}, "> max"),
    ],
)
def test_non_targets(change: dict[str, object], reason: str) -> None:
    res = AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM)).plan([track(**change)], [], 1400.0, SPEED, 0)  # type: ignore[arg-type]
    assert res.commands == () and res.skipped == 0 and res.late_dropped == 0
    assert res.decisions[0].action == "not_target" and reason in res.decisions[0].reason


# ---------------------------------------------------------------------- touching non-targets


def pair(
    target_wh: tuple[float, float], other_wh: tuple[float, float], gap_mm: float, along: bool = False
) -> tuple[Track, Track]:
    """A pet bottle and a touching cardboard, side by side (or the cardboard just ahead of it)."""
    t = track(track_id=1, u_mm=-1000.0, x_mm=500.0, length_mm=target_wh[0], width_mm=target_wh[1])
    if along:
        u = -1000.0 + (target_wh[0] + other_wh[0]) / 2 + gap_mm
        o = track(track_id=2, u_mm=u, x_mm=500.0, length_mm=other_wh[0], width_mm=other_wh[1], class_id=3)
    else:
        x = 500.0 + (target_wh[1] + other_wh[1]) / 2 + gap_mm
        o = track(track_id=2, u_mm=-1000.0, x_mm=x, length_mm=other_wh[0], width_mm=other_wh[1], class_id=3)
    return t, dataclasses.replace(o, class_votes=(0, 0, 0, 9.0, 0, 0))


@pytest.mark.parametrize(
    ("policy", "target_wh", "other_wh", "gap", "along", "ejected"),
    [
        ("eject", (100, 80), (200, 200), 2.0, False, True),
        ("skip", (100, 80), (50, 50), 2.0, False, False),
        ("skip", (100, 80), (50, 50), 2.0, True, False),
        ("skip", (100, 80), (50, 50), 20.0, False, True),  # not touching
        ("eject_if_larger", (150, 120), (60, 60), 2.0, False, True),
        ("eject_if_larger", (60, 60), (150, 120), 2.0, False, False),
        ("eject_if_larger", (60, 60), (150, 120), 3.0, True, False),
        ("eject_if_larger", (60, 60), (150, 120), 30.0, True, True),  # not touching
    ],
)
def test_touching_nontarget_policies(
    policy: str, target_wh: tuple[float, float], other_wh: tuple[float, float], gap: float, along: bool, ejected: bool
) -> None:
    policy_params = PolicyParams(touching_nontarget=policy, touching_gap_mm=5.0)  # type: ignore[arg-type]
    params = AirjetParams(y_eject_mm=Y_EJECT_MM, policy=policy_params)
    target, other = pair(target_wh, other_wh, gap, along)
    res = AirjetPlanner(params).plan([target, other], [], 1400.0, SPEED, 0)
    actions = {d.track_id: d.action for d in res.decisions}
    assert actions[2] == "not_target"
    if ejected:
        assert actions[1] == "eject" and [c.track_id for c in fire(res.commands)] == [1] and res.skipped == 0
    else:
        assert actions[1] == "skip" and res.commands == () and res.skipped == 1
        assert "touches non-target" in next(d.reason for d in res.decisions if d.track_id == 1)


def test_touching_neighbour_retired_earlier_is_still_known() -> None:
    params = AirjetParams(y_eject_mm=Y_EJECT_MM, policy=PolicyParams(touching_nontarget="skip"))
    target, other = pair((100, 80), (100, 80), 1.0)
    planner = AirjetPlanner(params)
    planner.plan([other], [], 1300.0, SPEED, 0)  # the neighbour was seen (and decided) first
    res = planner.plan([], [target], 1400.0, SPEED, 0)
    assert res.decisions[0].action == "skip" and res.skipped == 1


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="min_pulse_ms"):
        AirjetParams(y_eject_mm=Y_EJECT_MM, min_pulse_ms=90.0, max_pulse_ms=80.0)
    with pytest.raises(ValueError, match="downstream of the camera view"):
        AirjetParams(y_eject_mm=300.0)
    with pytest.raises(ValueError, match="touching_nontarget"):
        PolicyParams(touching_nontarget="maybe")  # type: ignore[arg-type]


def test_each_valve_fires_with_its_own_calibrated_lead() -> None:
    # valves 14..17 cover x 300 +- 35 mm; valve 16 is slower (5 ms), valve 15 faster (1 ms) than the 3 ms of the others
    tr = track(length_mm=120.0, x_mm=300.0, width_mm=60.0)
    own = [3.0] * 64
    own[15], own[16] = 1.0, 5.0
    per_valve = AirjetParams(y_eject_mm=Y_EJECT_MM, latency_ms=3.0, valve_latency_ms=tuple(own))
    (cmd,) = plan_once(AirjetPlanner(per_valve), tr, 1400.0)
    (flat,) = plan_once(AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM, latency_ms=3.0)), tr, 1400.0)
    # opens with the slowest valve's lead, closes with the fastest's: every valve's air covers the object
    assert flat.s_open_mm - cmd.s_open_mm == pytest.approx(SPEED * 2.0e-3)
    assert cmd.s_close_mm - flat.s_close_mm == pytest.approx(SPEED * 2.0e-3)
    # a shot over valves that all run at the mean is the same as without per-valve latencies
    even = AirjetParams(y_eject_mm=Y_EJECT_MM, latency_ms=3.0, valve_latency_ms=(3.0,) * 64)
    (same,) = plan_once(AirjetPlanner(even), tr, 1400.0)
    assert (same.s_open_mm, same.s_close_mm) == pytest.approx((flat.s_open_mm, flat.s_close_mm))
    with pytest.raises(ValueError, match="valve_latency_ms needs 64 values"):
        AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM, valve_latency_ms=(3.0, 3.0)))


def test_a_second_track_of_a_commanded_object_is_not_shot_twice() -> None:
    planner = AirjetPlanner(AirjetParams(y_eject_mm=Y_EJECT_MM))
    first = track(track_id=1, u_mm=-1000.0, x_mm=600.0)  # 100 x 80 mm
    (cmd,) = plan_once(planner, first, 1400.0)
    # a second track 10 mm behind and 5 mm beside it: 90 % x 94 % of its footprint inside the first, the same object
    dup = track(track_id=2, u_mm=-1010.0, x_mm=605.0)
    res = planner.plan([dup], [], 1420.0, SPEED, 0)
    assert res.commands == () and res.skipped == 1
    (d,) = res.decisions
    assert (d.action, d.reason) == ("skip", f"same object as command {cmd.command_id} (track 1): 84% of it inside that target")
    # a neighbour lying 40 mm behind on it (60 % inside) and one beside it on other valves are each shot
    on_it = track(track_id=3, u_mm=-1040.0, x_mm=600.0)
    beside = track(track_id=4, u_mm=-1000.0, x_mm=300.0)
    shots = fire(planner.plan([on_it, beside], [], 1420.0, SPEED, 0).commands)
    assert [c.track_id for c in shots] == [3, 4]
    assert shots[0].s_open_mm < cmd.s_close_mm and shots[0].valve_first <= cmd.valve_last  # in the first one's air
