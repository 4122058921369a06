"""Run accounting: every command sent ends in exactly one outcome, and the summary adds up."""

from __future__ import annotations

from sorter.entities import CommandReport, FireCommand
from sorter.runtime.accounting import RunCounters, build_summary, human_summary
from sorter.runtime.stats import LatencyRecorder


def fire(cid: int, s_open_mm: float) -> FireCommand:
    return FireCommand(cid, cid, 0, 0, s_open_mm, s_open_mm + 5.0, s_open_mm, 0, 0)


def test_sent_is_the_sum_of_outcomes_including_cancelled_and_lost() -> None:
    c = RunCounters()
    c.on_commands(tuple(fire(i, 100.0 * i) for i in range(6)))
    c.commands_late_dropped += 2  # the planner found two more late: never sent
    reports = [
        CommandReport(0, "accepted"),
        CommandReport(0, "executed", s_actual_mm=0.0),
        CommandReport(1, "late"),
        CommandReport(2, "rejected", detail="controller NAK unknown NAK reason 23"),
        CommandReport(3, "cancelled"),
        CommandReport(4, "lost", detail="epoch change: controller restarted"),
    ]
    c.on_reports(reports, tolerance_mm=0.2)
    s = build_summary(
        counters=c,
        latency=LatencyRecorder(),
        score={},
        sim_duration_s=1.0,
        wall_s=1.0,
        mode="airjet",
        detector="x",
        actuator_stats={},
    )
    assert (s["commands_cancelled"], s["commands_lost"], s["commands_late_sent"]) == (1, 1, 1)
    assert s["commands_late_dropped"] == 3  # planner and link together, as before
    assert s["commands_without_outcome"] == 1  # command 5 is still out
    c.on_reports([CommandReport(5, "lost")], tolerance_mm=0.2)
    s = build_summary(
        counters=c,
        latency=LatencyRecorder(),
        score={},
        sim_duration_s=1.0,
        wall_s=1.0,
        mode="airjet",
        detector="x",
        actuator_stats={},
    )
    assert s["commands_without_outcome"] == 0
    assert s["commands_sent"] == (
        s["commands_executed"] + s["commands_late_sent"] + s["commands_rejected"] + s["commands_cancelled"] + s["commands_lost"]
    )
    assert s["commands_executed_late"] == 0
    assert "lost 2" in human_summary(s) and "cancelled 1" in human_summary(s)
