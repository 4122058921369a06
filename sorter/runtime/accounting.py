"""Run counters and the end-of-run summary (JSON and human text).

Every figure of a deterministic ``--fast`` run's summary is reproducible from its
seed and latency profile except the wall-clock ones, :data:`WALL_CLOCK_KEYS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sorter.entities import CommandReport, FireCommand, PickCommand
from sorter.runtime.stats import LatencyRecorder, percentiles

#: Summary fields that depend on the machine and its load (all others of a ``--fast`` run charged by profile do not).
WALL_CLOCK_KEYS = frozenset({"realtime_factor", "wall_s", "latency_measured_ms", "drain_s"})


@dataclass
class RunCounters:
    """Counters of one run, updated by the main loop only."""

    frames: int = 0
    frames_dropped: int = 0
    frames_dropped_capture: int = 0
    frames_dropped_slot_live: int = 0  # overwritten in the latest-frame slot so far (added to frames_dropped at the end)
    commands_sent: int = 0
    commands_accepted: int = 0
    commands_late_dropped: int = 0  # planner (never sent) and link/controller (sent, refused late) together
    commands_late_sent: int = 0  # of those, sent and then refused late by the link or the controller
    commands_rejected: int = 0
    commands_executed: int = 0
    commands_executed_late: int = 0
    commands_cancelled: int = 0
    commands_lost: int = 0  # no outcome can be known (controller restarted, count reset, link given up)
    tracks_confirmed: int = 0
    tracks_unconfirmed: int = 0
    commands_held: int = 0  # decided while actuation was paused: never sent
    decisions: dict[str, int] = field(default_factory=dict)
    objects_by_class: dict[str, int] = field(default_factory=dict)
    command_pos_mm: dict[int, float] = field(default_factory=dict)

    def on_capture_lost(self, n: int) -> None:
        """The camera lost ``n`` frames while busy (a live simulated camera rendering late)."""
        self.frames_dropped += n
        self.frames_dropped_capture += n

    def on_commands(self, commands: tuple[FireCommand | PickCommand, ...]) -> None:
        self.commands_sent += len(commands)
        for c in commands:
            self.command_pos_mm[c.command_id] = c.s_open_mm if isinstance(c, FireCommand) else c.s_pick_mm

    def on_reports(self, reports: list[CommandReport], tolerance_mm: float) -> None:
        """Count device answers; an execution past its commanded position is a late execution.

        Every command sent ends in exactly one of executed, late, rejected, cancelled and lost,
        so ``commands_sent`` is their sum once the actuator is idle.
        """
        for r in reports:
            if r.status == "accepted":
                self.commands_accepted += 1
            elif r.status == "late":
                self.commands_late_dropped += 1
                self.commands_late_sent += 1
            elif r.status == "rejected":
                self.commands_rejected += 1
            elif r.status == "cancelled":
                self.commands_cancelled += 1
                self.command_pos_mm.pop(r.command_id, None)
            elif r.status == "lost":
                self.commands_lost += 1
                self.command_pos_mm.pop(r.command_id, None)
            elif r.status == "executed":
                self.commands_executed += 1
                want = self.command_pos_mm.pop(r.command_id, None)
                if want is not None and r.s_actual_mm is not None and r.s_actual_mm > want + tolerance_mm:
                    self.commands_executed_late += 1


def build_summary(
    *,
    counters: RunCounters,
    latency: LatencyRecorder,
    score: dict[str, Any],
    sim_duration_s: float,
    wall_s: float,
    mode: str,
    detector: str,
    actuator_stats: dict[str, int],
) -> dict[str, Any]:
    """The ``--summary`` JSON document."""
    lat = {k: {"p50": v["p50"], "p99": v["p99"]} for k, v in latency.summary_ms().items()}
    robot = mode == "robot"
    errors = score.get("pick_errors_mm" if robot else "fire_position_errors_mm", [])
    summary: dict[str, Any] = {
        "mode": mode,
        "detector": detector,
        "frames": counters.frames,
        "frames_dropped": counters.frames_dropped,
        "frames_dropped_capture": counters.frames_dropped_capture,
        "frames_dropped_fraction": round(counters.frames_dropped / max(1, counters.frames + counters.frames_dropped), 5),
        "objects_seen": score.get("objects_seen", 0),
        "targets_passed": score.get("targets_passed", 0),
        "targets_ejected": score.get("targets_ejected", 0) + score.get("targets_picked", 0),
        "nontargets_ejected": score.get("nontargets_ejected", 0) + score.get("nontargets_picked", 0),
        "recovery": score.get("recovery", 0.0),
        "recovery_visible": score.get("recovery_visible", 0.0),
        "purity": score.get("purity", 1.0),
        "commands_sent": counters.commands_sent,
        "commands_late_dropped": counters.commands_late_dropped,
        "commands_rejected": counters.commands_rejected,
        "commands_executed": counters.commands_executed,
        "commands_executed_late": counters.commands_executed_late,
        "commands_cancelled": counters.commands_cancelled,
        "commands_lost": counters.commands_lost,
        "commands_late_sent": counters.commands_late_sent,
        # sent == executed + late_sent + rejected + cancelled + lost + without_outcome; 0 once the actuator is idle
        "commands_without_outcome": counters.commands_sent
        - counters.commands_executed
        - counters.commands_late_sent
        - counters.commands_rejected
        - counters.commands_cancelled
        - counters.commands_lost,
        "fire_position_error_mm": {k: v for k, v in percentiles(errors).items() if k != "n"},
        # every shot's (pick's) absolute error in the order executed: figures pooled over several runs need them all
        "fire_position_errors_mm": [round(float(e), 2) for e in errors],
        "latency_ms": lat,
        "realtime_factor": round(sim_duration_s / wall_s, 3) if wall_s > 0 else 0.0,
        "sim_duration_s": round(sim_duration_s, 3),
        "wall_s": round(wall_s, 3),
        "tracks_confirmed": counters.tracks_confirmed,
        "tracks_unconfirmed": counters.tracks_unconfirmed,
        "decisions": dict(sorted(counters.decisions.items())),
        "objects_by_class": dict(sorted(counters.objects_by_class.items())),
        "actuator": actuator_stats,
        "pulses_without_object": score.get("pulses_without_object", 0),
    }
    if robot:
        attempted = int(score.get("picks_attempted", 0))
        summary["picks_attempted"] = attempted
        summary["picks_succeeded"] = int(score.get("picks_succeeded", 0))
        summary["pick_success"] = round(summary["picks_succeeded"] / attempted, 4) if attempted else 0.0
        summary["picks_per_min"] = round(attempted * 60.0 / sim_duration_s, 2) if sim_duration_s > 0 else 0.0
    if "per_class" in score:
        summary["per_class"] = score["per_class"]
    return summary


def human_summary(s: dict[str, Any]) -> str:
    """A short text for the terminal."""
    fe = s["fire_position_error_mm"]
    lines = [
        f"Run summary ({s['mode']}, detector {s.get('detector', '?')}, "
        f"{s['sim_duration_s']:.1f} s of belt in {s['wall_s']:.1f} s wall, x{s['realtime_factor']:.2f})",
        f"  frames            {s['frames']}  dropped {s['frames_dropped']} ({100 * s['frames_dropped_fraction']:.2f} %)",
    ]
    by_class = ", ".join(f"{k} {v}" for k, v in s.get("objects_by_class", {}).items())
    if s["objects_seen"] or not by_class:  # scored against the simulator's ground truth
        lines += [
            f"  objects seen      {s['objects_seen']}",
            f"  targets passed    {s['targets_passed']}  ejected {s['targets_ejected']}  "
            f"non-targets ejected {s['nontargets_ejected']}",
            f"  recovery          {s['recovery']:.4f}   purity {s['purity']:.4f}",
        ]
    else:  # no ground truth (a real camera or a replay): what the tracker confirmed
        lines.append(f"  objects tracked   {s['tracks_confirmed']} ({by_class})")
    lines += [
        f"  commands          sent {s['commands_sent']}  late-dropped {s['commands_late_dropped']}  "
        f"rejected {s['commands_rejected']}  executed {s['commands_executed']}  executed late {s['commands_executed_late']}"
        + (f"  cancelled {s['commands_cancelled']}" if s.get("commands_cancelled") else "")
        + (f"  lost {s['commands_lost']}" if s.get("commands_lost") else ""),
    ]
    if fe["p50"] or fe["max"]:
        what = "pick" if s["mode"] == "robot" else "position"
        lines.append(f"  {what} error mm p50 {fe['p50']:.2f}  p99 {fe['p99']:.2f}  max {fe['max']:.2f}")
    if "pick_success" in s:
        lines.append(
            f"  picks             {s.get('picks_succeeded', 0)}/{s.get('picks_attempted', 0)} ok "
            f"({s['pick_success']:.3f}), {s.get('picks_per_min', 0):.1f} picks/min"
        )
    lat = s["latency_ms"]
    how = s.get("charge")
    prof = s.get("latency_profile")
    booked = f" (modelled: profile {prof['name']}, {prof['source']})" if how == "profile" and prof else ""
    lines.append("  latency ms        " + "  ".join(f"{k} {v['p50']:.3f}/{v['p99']:.3f}" for k, v in lat.items())
                 + "  (p50/p99)" + booked)
    measured = s.get("latency_measured_ms")
    if measured:
        lines.append("  this machine ms   " + "  ".join(f"{k} {v['p50']:.3f}/{v['p99']:.3f}" for k, v in measured.items())
                     + "  (p50/p99, not charged)")
    over = s.get("overload") or {}
    if over.get("overloaded"):
        lines.append(
            f"  WARNING           overloaded {over['overloaded_s']:.1f} s in {over['episodes']} episode(s): "
            f"the loop could not hold the camera rate; worst: {over['worst']}"
        )
    return "\n".join(lines)
