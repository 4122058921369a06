"""The miss taxonomy on small hand-built histories: one per cause, each attribution checked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sorter.entities import MATERIAL_CLASSES
from sorter.sim.explain import cause_counts, cause_table, explain_run, explain_summary, worst_cases
from sorter.sim.explain_history import CAUSES, CommandNote, DecisionNote, RunHistory, Sighting, TrackNote
from sorter.sim.records import ObjectFate, PickRecord, PulseRecord

PET, CAN, PAPER = 0, 2, 4  # PET is the target
TARGETS = frozenset({PET})


def fate(oid: int, cls: int, what: str = "passed", cmd: int | None = None, vis: float = 1.0, counted: bool = True) -> ObjectFate:
    return ObjectFate(oid, cls, what, 0, counted, cmd, vis)  # type: ignore[arg-type]


def seen(frames: Sequence[int], track: int = 0, cls: int = PET, vis: float = 1.0) -> list[Sighting]:
    return [Sighting(f, vis, track, cls if track else -1, 0.9 if track else 0.0) for f in frames]


def track(tid: int, first: int = 10, confirmed: int | None = 12, last: int = 30) -> TrackNote:
    return TrackNote(tid, first, confirmed, last)


def decision(tid: int, action: str, cls: int = PET, frame: int = 30, cmd: int | None = None, reason: str = "") -> DecisionNote:
    return DecisionNote(tid, action, reason, cls, 0.9, frame, cmd)


def pulse(cmd: int, *, hit: int | None, error_mm: float | None, late_mm: float = 0.0, truncated: bool = False) -> PulseRecord:
    return PulseRecord(
        command_id=cmd,
        valve_first=10,
        valve_last=12,
        s_open_cmd_mm=1000.0,
        s_close_cmd_mm=1100.0,
        t_open_ns=0,
        t_close_ns=1,
        s_open_actual_mm=1000.0 + late_mm,
        s_close_actual_mm=1100.0,
        ejected_ids=(),
        hit_object_id=hit,
        fire_position_error_mm=error_mm,
        truncated=truncated,
        s_switch_mm=1000.0 + late_mm,
    )


def history(
    fates: Sequence[ObjectFate],
    sightings: Mapping[int, Sequence[Sighting]],
    tracks: Sequence[TrackNote] = (),
    decisions: Sequence[DecisionNote] = (),
    commands: Sequence[CommandNote] = (),
    pulses: Sequence[PulseRecord] = (),
    picks: Sequence[PickRecord] = (),
) -> RunHistory:
    return RunHistory(
        target_class_ids=TARGETS,
        fates=fates,
        sightings=sightings,
        tracks={t.track_id: t for t in tracks},
        decisions={d.track_id: d for d in decisions},
        commands={c.command_id: c for c in commands},
        pulses={p.command_id: p for p in pulses},
        picks={p.command_id: p for p in picks},
        class_names=MATERIAL_CLASSES,
    )


def only(h: RunHistory) -> tuple[str, str, int]:
    out = explain_run(h)
    assert len(out) == 1, out
    return out[0].cause, out[0].kind, out[0].track_id


# ---------------------------------------------------------------------------- targets missed, upstream first


def test_hidden_target_is_not_visible() -> None:
    h = history([fate(1, PET, vis=0.2)], {1: seen(range(10, 20), vis=0.2)})
    assert only(h) == ("not_visible", "target_missed", 0)


def test_visible_undetected_target_is_never_detected() -> None:
    h = history([fate(1, PET)], {1: seen(range(10, 20))})
    cause, kind, _ = only(h)
    assert (cause, kind) == ("never_detected", "target_missed")


def test_target_with_only_tentative_tracks_is_not_confirmed() -> None:
    h = history([fate(1, PET)], {1: seen([10], track=5) + seen(range(11, 20))}, [track(5, confirmed=None)])
    assert only(h) == ("not_confirmed_in_time", "target_missed", 5)


def test_track_confirmed_only_when_too_late_is_not_confirmed_in_time() -> None:
    h = history(
        [fate(1, PET)],
        {1: seen(range(10, 30), track=5)},
        [track(5, confirmed=30)],
        [decision(5, "late", frame=30, reason="opening not ahead")],
    )
    assert only(h) == ("not_confirmed_in_time", "target_missed", 5)


def test_target_decided_as_another_class_is_wrong_class() -> None:
    h = history([fate(1, PET)], {1: seen(range(10, 30), track=5)}, [track(5)], [decision(5, "not_target", cls=CAN)])
    assert only(h) == ("wrong_class", "target_missed", 5)


def test_target_with_too_low_class_confidence_is_wrong_class() -> None:
    h = history(
        [fate(1, PET)],
        {1: seen(range(10, 30), track=5)},
        [track(5)],
        [decision(5, "not_target", reason="class confidence 0.40 < 0.50")],
    )
    assert only(h) == ("wrong_class", "target_missed", 5)


def test_target_whose_detections_fed_a_neighbours_track_is_swapped() -> None:
    # object 2 (a can) owns track 7; object 1's few detections went to it too
    h = history(
        [fate(1, PET), fate(2, CAN)],
        {1: seen(range(10, 13), track=7), 2: seen(range(10, 30), track=7, cls=CAN)},
        [track(7)],
        [decision(7, "not_target", cls=CAN)],
    )
    assert only(h) == ("track_lost_or_swapped", "target_missed", 7)


def test_track_that_ended_on_another_object_and_was_shot_there_is_swapped() -> None:
    h = history(
        [fate(1, PET), fate(2, CAN, "passed")],
        {1: seen(range(10, 25), track=5), 2: seen(range(25, 28), track=5, cls=CAN)},
        [track(5)],
        [decision(5, "eject", cmd=9)],
        [CommandNote(9, 5, 30, 1000.0)],
        [pulse(9, hit=2, error_mm=0.5)],
    )
    assert only(h) == ("track_lost_or_swapped", "target_missed", 5)


def test_confirmed_track_without_a_decision_is_lost() -> None:
    h = history([fate(1, PET)], {1: seen(range(10, 30), track=5)}, [track(5)])
    assert only(h) == ("track_lost_or_swapped", "target_missed", 5)


def test_shot_on_time_that_missed_is_fire_position_off() -> None:
    h = history(
        [fate(1, PET)],
        {1: seen(range(10, 30), track=5)},
        [track(5)],
        [decision(5, "eject", cmd=9)],
        [CommandNote(9, 5, 30, 1000.0)],
        [pulse(9, hit=1, error_mm=35.0)],
    )
    assert only(h) == ("fire_position_off", "target_missed", 5)


def test_command_never_executed_is_dropped() -> None:
    h = history(
        [fate(1, PET)], {1: seen(range(10, 30), track=5)}, [track(5)], [decision(5, "eject", cmd=9)], [CommandNote(9, 5, 30, 1e3)]
    )
    assert only(h) == ("commanded_late_or_dropped", "target_missed", 5)


def test_valves_switched_late_is_commanded_late() -> None:
    h = history(
        [fate(1, PET)],
        {1: seen(range(10, 30), track=5)},
        [track(5)],
        [decision(5, "eject", cmd=9)],
        [CommandNote(9, 5, 30, 1000.0)],
        [pulse(9, hit=1, error_mm=40.0, late_mm=40.0)],
    )
    assert only(h) == ("commanded_late_or_dropped", "target_missed", 5)


def test_planner_late_after_an_early_confirmation_is_commanded_late() -> None:
    h = history(
        [fate(1, PET)],
        {1: seen(range(10, 30), track=5)},
        [track(5, confirmed=12)],
        [decision(5, "late", frame=31, reason="opening not ahead")],
    )
    assert only(h) == ("commanded_late_or_dropped", "target_missed", 5)


def test_busy_robot_and_rate_limit_are_actuator_busy() -> None:
    busy = history(
        [fate(1, PET)],
        {1: seen(range(10, 30), track=5)},
        [track(5)],
        [decision(5, "pick", cmd=9)],
        [CommandNote(9, 5, 30, 1000.0)],
        picks=[PickRecord(9, 0, 1000.0, success=False, busy=True, object_id=None, error_mm=None)],
    )
    assert only(busy) == ("actuator_busy_or_rate_limited", "target_missed", 5)
    limited = history(
        [fate(1, PET)],
        {1: seen(range(10, 30), track=5)},
        [track(5)],
        [decision(5, "skip", reason="pick-rate limit: no slot 150 mm from committed picks before 1500 mm")],
    )
    assert only(limited) == ("actuator_busy_or_rate_limited", "target_missed", 5)


def test_pick_that_missed_is_fire_position_off() -> None:
    h = history(
        [fate(1, PET)],
        {1: seen(range(10, 30), track=5)},
        [track(5)],
        [decision(5, "pick", cmd=9)],
        [CommandNote(9, 5, 30, 1000.0)],
        picks=[PickRecord(9, 0, 1000.0, success=False, busy=False, object_id=1, error_mm=42.0)],
    )
    assert only(h) == ("fire_position_off", "target_missed", 5)


def test_policy_skip_is_other() -> None:
    h = history(
        [fate(1, PET)],
        {1: seen(range(10, 30), track=5)},
        [track(5)],
        [decision(5, "not_target", reason="size 800 mm > max 700 mm")],
    )
    assert only(h) == ("other", "target_missed", 5)
    assert explain_run(h)[0].tag == "policy"


# ---------------------------------------------------------------------------- non-targets removed


def test_nontarget_shot_as_a_target_is_wrong_class() -> None:
    h = history(
        [fate(3, CAN, "ejected", cmd=9)],
        {3: seen(range(10, 30), track=5, cls=PET)},
        [track(5)],
        [decision(5, "eject", cls=PET, cmd=9)],
        [CommandNote(9, 5, 30, 1000.0)],
        [pulse(9, hit=3, error_mm=0.3)],
    )
    assert only(h) == ("wrong_class", "nontarget_removed", 5)


def test_nontarget_blown_off_with_a_well_aimed_neighbour_is_other() -> None:
    h = history(
        [fate(1, PET, "ejected", cmd=9), fate(3, PAPER, "ejected", cmd=9)],
        {1: seen(range(10, 30), track=5), 3: seen(range(10, 30), track=6, cls=PAPER)},
        [track(5), track(6)],
        [decision(5, "eject", cmd=9), decision(6, "not_target", cls=PAPER)],
        [CommandNote(9, 5, 30, 1000.0)],
        [pulse(9, hit=1, error_mm=1.0)],
    )
    assert only(h) == ("other", "nontarget_removed", 5)
    assert explain_summary(explain_run(h))["other_by_kind"] == {"neighbour": 1}


def test_nontarget_hit_by_a_misplaced_shot_is_fire_position_off() -> None:
    h = history(
        [fate(1, PET, "passed"), fate(3, PAPER, "ejected", cmd=9)],
        {1: seen(range(10, 30), track=5), 3: seen(range(10, 30), track=6, cls=PAPER)},
        [track(5), track(6)],
        [decision(5, "eject", cmd=9), decision(6, "not_target", cls=PAPER)],
        [CommandNote(9, 5, 30, 1000.0)],
        [pulse(9, hit=3, error_mm=60.0)],
    )
    causes = {(a.object_id, a.cause, a.kind) for a in explain_run(h)}
    assert causes == {(1, "fire_position_off", "target_missed"), (3, "fire_position_off", "nontarget_removed")}


def test_nontarget_taken_over_by_a_targets_track_is_swapped() -> None:
    h = history(
        [fate(1, PET, "passed"), fate(3, PAPER, "ejected", cmd=9)],
        {1: seen(range(10, 26), track=5), 3: seen(range(26, 30), track=5, cls=PAPER)},
        [track(5)],
        [decision(5, "eject", cmd=9)],
        [CommandNote(9, 5, 30, 1000.0)],
        [pulse(9, hit=3, error_mm=0.5)],
    )
    got = {a.object_id: a.cause for a in explain_run(h)}
    assert got == {1: "track_lost_or_swapped", 3: "track_lost_or_swapped"}


def test_nontarget_removed_by_a_false_positive_track_is_other() -> None:
    h = history(
        [fate(3, PAPER, "ejected", cmd=9)],
        {3: seen(range(10, 30))},
        [track(5)],
        [decision(5, "eject", cmd=9)],
        [CommandNote(9, 5, 30, 1000.0)],
        [pulse(9, hit=3, error_mm=20.0)],
    )
    assert only(h) == ("other", "nontarget_removed", 5)
    assert explain_run(h)[0].tag == "false_positive"


# ---------------------------------------------------------------------------- bookkeeping


def test_successes_and_uncounted_objects_are_not_judged() -> None:
    h = history(
        [fate(1, PET, "ejected", cmd=9), fate(2, CAN, "passed"), fate(4, PET, "passed", counted=False)],
        {1: seen(range(10, 30), track=5)},
    )
    assert explain_run(h) == []


def test_counts_cover_every_cause_and_sum_to_the_failures() -> None:
    h = history(
        [fate(1, PET, vis=0.1), fate(2, PET), fate(3, PET), fate(4, CAN, "ejected", cmd=9)],
        {1: seen([10], vis=0.1), 2: seen(range(10, 20)), 3: seen(range(10, 20)), 4: seen(range(10, 30), track=5, cls=PET)},
        [track(5)],
        [decision(5, "eject", cmd=9)],
        [CommandNote(9, 5, 30, 1000.0)],
    )
    atts = explain_run(h)
    counts = cause_counts(atts)
    assert list(counts) == list(CAUSES)
    assert counts["not_visible"]["target_missed"] == 1
    assert counts["never_detected"]["target_missed"] == 2
    assert counts["wrong_class"]["nontarget_removed"] == 1
    assert sum(r["total"] for r in counts.values()) == len(atts) == 4
    summary = explain_summary(atts, MATERIAL_CLASSES)
    assert (summary["targets_missed"], summary["nontargets_removed"]) == (3, 1)
    assert summary["cases"][0]["first_frame"] == 10 and summary["cases"][0]["class"] == "pet_bottle"
    assert "never_detected" in cause_table(summary) and "fire_position_off" not in cause_table(summary)
    listed = cause_table(summary, max_cases=2).splitlines()
    assert listed[-3].startswith("  object 1 (pet_bottle, target missed): not_visible, frame 10")
    assert listed[-1] == "  ... 2 more in the summary JSON"
    worst = worst_cases(atts, n=3, per_cause=1)
    assert [a.cause for a in worst] == ["never_detected", "not_visible", "wrong_class"]
