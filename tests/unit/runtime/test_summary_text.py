"""End-of-run summaries in words: robot lines pick, unknown figures are said to be unknown, every fault is counted."""

from __future__ import annotations

from typing import Any

from sorter.runtime.summary_text import human_summary, recording_line, score_lines


def _summary(**over: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "mode": "airjet", "detector": "oracle", "sim_duration_s": 10.0, "wall_s": 4.0, "realtime_factor": 2.5,
        "frames": 600, "frames_dropped": 0, "frames_dropped_fraction": 0.0, "objects_seen": 40, "targets_passed": 20,
        "targets_ejected": 18, "nontargets_ejected": 2, "recovery": 0.9, "purity": 0.9, "commands_sent": 20,
        "commands_executed": 20, "ground_truth": True,
    }
    s.update(over)
    return s


def test_robot_summaries_say_picked_and_purity_is_unknown_when_nothing_was_removed() -> None:
    text = human_summary(_summary(mode="robot", targets_ejected=0, nontargets_ejected=0, purity=1.0, recovery=0.0))
    assert "ejected" not in text
    assert "picked 0  non-targets picked 0" in text
    assert "purity n/a (nothing picked)" in text and "1.0000" not in text
    air = human_summary(_summary(targets_ejected=0, nontargets_ejected=0, purity=1.0))
    assert "purity n/a (nothing ejected)" in air and "picked" not in air
    assert "recovery          0.9000   purity 0.9000" in human_summary(_summary())


def test_recovery_is_unknown_without_targets_and_scores_are_unknown_without_ground_truth() -> None:
    rows = score_lines(_summary(targets_passed=0, recovery=0.0))
    assert any(r.split()[0] == "recovery" and "n/a (no target went by)" in r for r in rows)
    replay = score_lines(_summary(ground_truth=False, tracks_confirmed=12, objects_by_class={"pet_bottle": 12}))
    assert replay[0].split() == ["objects", "tracked", "12", "(pet_bottle", "12)"]
    assert "n/a (no ground truth" in replay[1] and "purity 1" not in " ".join(replay)


def test_the_summary_counts_every_fault_including_watchdog_trips() -> None:
    text = human_summary(_summary(faults={"camera": 2, "watchdog_trips": 3, "link_reconnects": 1}))
    assert "faults            camera 2, link reconnects 1, watchdog trips 3" in text
    assert "faults            none" in human_summary(_summary(faults={}))


def test_an_incomplete_recording_says_what_it_missed() -> None:
    rec = {"frames": 410, "frames_captured": 525, "frames_dropped": 115, "dropped_share": 115 / 525, "longest_gap_ms": 83.0}
    assert recording_line(rec) == "410 of 525 frames written, 115 dropped (21.9 %), longest gap 83 ms: INCOMPLETE"
    assert recording_line({"frames": 60, "frames_captured": 60, "frames_dropped": 0}) == "60 of 60 frames written, complete"
