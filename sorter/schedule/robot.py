"""Robot pick planner: most valuable targets first, within reach and the pick-rate limit.

A confirmed target becomes a candidate when no further measurement can
improve it (retired, left the camera view, or within ``decide_before_mm`` of
the robot window). Every call re-plans the uncommitted candidates greedily by
value (then confidence, then earliest window exit), each at the earliest
odometer position that is inside its reachable window and at least one pick
period (converted to travel at the current belt speed) away from every other
pick. A planned pick is committed, and its :class:`PickCommand` sent, once it
is within ``commit_before_mm`` of the odometer; until then a more valuable
target found later may take its slot (a small lookahead). A candidate that
can no longer get any slot next to the committed picks is skipped; one whose
window has passed is late.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

from sorter.entities import Command, PickCommand, Track, TrackColumns
from sorter.schedule.policy import PolicyParams, why_not_target
from sorter.schedule.results import Action, Decision, DecisionLedger, PlanResult
from sorter.schedule.timing import decision_due, maybe_due, s_crossing


@dataclass(frozen=True, slots=True)
class RobotParams:
    """Reach, speed and preferences of a pick robot.

    Attributes:
        window_y_start_mm: upstream end of the reachable window, world ``y_w_mm``.
        window_y_end_mm: downstream end of the reachable window.
        x_min_mm: reachable lateral range, belt ``x_mm``.
        x_max_mm: reachable lateral range, belt ``x_mm``.
        max_picks_per_min: pick-rate limit of the robot.
        values: value of picking each class id; classes not listed are worth ``default_value``.
        default_value: value of a class missing from ``values``.
        policy: which objects are targets (the touching rules do not apply to picking).
        safety_margin_mm: a pick closer than this to the current odometer is late.
        view_end_y_mm: downstream end of the camera view.
        decide_before_mm: a target becomes a candidate at the latest this far
            upstream of the window.
        commit_before_mm: a planned pick is committed (sent) when the odometer
            is within this of its pick position.
        min_speed_mm_s: floor of the belt speed used to turn the pick period into travel.
        edge_margin_mm: picks are planned at least this far inside the window
            and the lateral range (prediction error; a pick exactly on the
            edge may be refused by the robot).
        forget_after_mm: travel past the window after which a decided track id is forgotten.
    """

    window_y_start_mm: float = 900.0
    window_y_end_mm: float = 1700.0
    x_min_mm: float = 50.0
    x_max_mm: float = 1150.0
    max_picks_per_min: float = 60.0
    values: Mapping[int, float] = field(default_factory=dict)
    default_value: float = 1.0
    policy: PolicyParams = field(default_factory=PolicyParams)
    safety_margin_mm: float = 20.0
    view_end_y_mm: float = 360.0
    decide_before_mm: float = 150.0
    commit_before_mm: float = 400.0
    min_speed_mm_s: float = 50.0
    forget_after_mm: float = 2000.0
    edge_margin_mm: float = 10.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.window_y_end_mm <= self.window_y_start_mm:
            problems.append(
                f"RobotParams.window_y_end_mm = {self.window_y_end_mm!r} must exceed "
                f"window_y_start_mm = {self.window_y_start_mm!r}"
            )
        if self.x_max_mm <= self.x_min_mm:
            problems.append(f"RobotParams.x_max_mm = {self.x_max_mm!r} must exceed x_min_mm = {self.x_min_mm!r}")
        if self.max_picks_per_min <= 0:
            problems.append(f"RobotParams.max_picks_per_min = {self.max_picks_per_min!r} must be > 0")
        if self.min_speed_mm_s <= 0:
            problems.append(f"RobotParams.min_speed_mm_s = {self.min_speed_mm_s!r} must be > 0")
        for k in ("safety_margin_mm", "decide_before_mm", "commit_before_mm", "forget_after_mm", "edge_margin_mm"):
            if not getattr(self, k) >= 0:
                problems.append(f"RobotParams.{k} = {getattr(self, k)!r} must be >= 0")
        if self.window_y_start_mm <= self.view_end_y_mm:
            problems.append(
                f"RobotParams.window_y_start_mm = {self.window_y_start_mm!r} must lie downstream of the camera view "
                f"(view_end_y_mm = {self.view_end_y_mm!r})"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def pick_period_s(self) -> float:
        """Shortest time between two picks."""
        return 60.0 / self.max_picks_per_min

    def value_of(self, class_id: int) -> float:
        """Value of picking an object of ``class_id``."""
        return float(self.values.get(class_id, self.default_value))


def earliest_slot(lo_mm: float, hi_mm: float, taken_mm: Sequence[float], spacing_mm: float) -> float | None:
    """Earliest position in ``[lo_mm, hi_mm]`` at least ``spacing_mm`` from every taken position.

    Args:
        lo_mm: earliest allowed position.
        hi_mm: latest allowed position.
        taken_mm: positions already taken, sorted ascending.
        spacing_mm: minimum distance to each of them.
    """
    s = lo_mm
    start = bisect.bisect_left(taken_mm, s - spacing_mm)
    for p in taken_mm[start:]:
        if p - s >= spacing_mm:
            break
        s = max(s, p + spacing_mm)
    return s if s <= hi_mm else None


class RobotPlanner:
    """Plans :class:`PickCommand` s for one robot; one decision per confirmed track."""

    def __init__(self, params: RobotParams | None = None, first_command_id: int = 1) -> None:
        self.params = params or RobotParams()
        self._ledger = DecisionLedger()
        self._ids = itertools.count(first_command_id)
        self._pending: dict[int, Track] = {}  # candidates: final enough, not yet decided
        self._committed: list[float] = []  # pick positions already sent, ascending

    def plan(
        self, active: Sequence[Track], retired: Sequence[Track], s_now_mm: float, speed_mm_s: float, t_now_ns: int
    ) -> PlanResult:
        """Update the candidates, re-plan, and return the picks committed now.

        Args:
            active: live tracks from the tracker (tentative ones are ignored), best as
                :class:`~sorter.entities.TrackColumns` (what the tracker hands out; other sequences are converted).
            retired: tracks the tracker retired in its last update.
            s_now_mm: current belt odometer.
            speed_mm_s: current belt speed, to convert the pick period into travel.
            t_now_ns: current host time, stamped on commands and decisions.
        """
        p = self.params
        live = TrackColumns.of(active)
        pending = self._pending
        self._ledger.prune(s_now_mm)
        decisions: list[Decision] = []
        if pending:  # candidates refined since they became candidates
            for k, tid in enumerate(live.track_id.tolist()):
                if tid in pending:
                    pending[tid] = live[k]
        due, due_ids = maybe_due(live, s_now_mm, p.view_end_y_mm, p.window_y_start_mm, p.decide_before_mm)
        decided = self._ledger.ids
        fresh = (live[k] for k, tid in zip(due, due_ids, strict=True) if tid not in pending and tid not in decided)
        for tr, is_retired in itertools.chain(zip(fresh, repeat(False)), zip(retired, repeat(True))):
            tid = tr.track_id
            if tid in pending:
                pending[tid] = tr  # refined since it became a candidate
                continue
            if not tr.confirmed or tid in self._ledger:
                continue
            if not decision_due(tr, is_retired, s_now_mm, p.view_end_y_mm, p.window_y_start_mm, p.decide_before_mm):
                continue
            if s_crossing(tr, p.window_y_end_mm) + p.forget_after_mm < s_now_mm:
                continue  # long gone (a stale track handed in again): decided before and forgotten
            reason = why_not_target(tr, p.policy)
            if reason is None:
                pending[tid] = tr
            else:
                decisions.append(self._decided(tr, "not_target", reason, s_now_mm, t_now_ns))
        commands = self._schedule(s_now_mm, speed_mm_s, t_now_ns, decisions)
        late = sum(d.action == "late" for d in decisions)
        skipped = sum(d.action == "skip" for d in decisions)
        return PlanResult(commands=tuple(commands), decisions=tuple(decisions), late_dropped=late, skipped=skipped)

    # ------------------------------------------------------------------ scheduling
    def _reach(self, tr: Track, s_now_mm: float) -> tuple[float, float, float]:
        """``(lo, hi, s_out)``: odometer span where the track is reachable and not yet too late."""
        p = self.params
        m = p.edge_margin_mm
        s_in = s_crossing(tr, p.window_y_start_mm + m)
        s_out = s_crossing(tr, p.window_y_end_mm - m)
        lo = max(s_in, s_now_mm + p.safety_margin_mm)
        hi = s_out
        # lateral reach: x(s) is linear in s
        x_lo, x_hi = p.x_min_mm + m, p.x_max_mm - m
        x_ref, dx = tr.x_mm, tr.dx_per_mm
        if abs(dx) > 1e-12:
            s_a = tr.s_ref_mm + (x_lo - x_ref) / dx
            s_b = tr.s_ref_mm + (x_hi - x_ref) / dx
            lo, hi = max(lo, min(s_a, s_b)), min(hi, max(s_a, s_b))
        elif not x_lo <= x_ref <= x_hi:
            hi = lo - 1.0
        return lo, hi, s_out

    def _schedule(self, s_now_mm: float, speed_mm_s: float, t_now_ns: int, decisions: list[Decision]) -> list[Command]:
        p = self.params
        spacing = p.pick_period_s * max(speed_mm_s, p.min_speed_mm_s)
        self._committed = [s for s in self._committed if s > s_now_mm - spacing]
        committed = self._committed
        planned = list(committed)

        def priority(tr: Track) -> tuple[float, float, float]:
            return (-p.value_of(tr.class_id), -tr.class_confidence, s_crossing(tr, p.window_y_end_mm))

        commands: list[Command] = []
        for tr in sorted(self._pending.values(), key=priority):
            lo, hi, s_out = self._reach(tr, s_now_mm)
            if s_now_mm + p.safety_margin_mm > s_out:
                reason = f"window ends at {s_out:.0f} mm, odometer {s_now_mm:.0f} mm + margin {p.safety_margin_mm:.0f} mm"
                decisions.append(self._decided(tr, "late", reason, s_now_mm, t_now_ns))
                continue
            if lo > hi:
                decisions.append(self._decided(tr, "skip", "outside the robot's lateral reach", s_now_mm, t_now_ns))
                continue
            if earliest_slot(lo, hi, committed, spacing) is None:
                reason = f"pick-rate limit: no slot {spacing:.0f} mm from committed picks before {hi:.0f} mm"
                decisions.append(self._decided(tr, "skip", reason, s_now_mm, t_now_ns))
                continue
            slot = earliest_slot(lo, hi, planned, spacing)
            if slot is None:
                continue  # a more valuable candidate holds the slot for now
            bisect.insort(planned, slot)
            if slot - s_now_mm > p.commit_before_mm:
                continue  # planned, not committed: may still give way to a better target
            bisect.insort(committed, slot)
            y_mm, x_mm, _, _ = tr.predict(slot)
            cmd = PickCommand(
                command_id=next(self._ids),
                track_id=tr.track_id,
                x_mm=x_mm,
                u_mm=y_mm - slot,
                s_pick_mm=slot,
                class_id=tr.class_id,
                value=p.value_of(tr.class_id),
                t_issue_ns=t_now_ns,
            )
            commands.append(cmd)
            decisions.append(self._decided(tr, "pick", "", s_now_mm, t_now_ns, cmd.command_id, slot))
        return commands

    def _decided(
        self,
        tr: Track,
        action: Action,
        reason: str,
        s_now_mm: float,
        t_now_ns: int,
        command_id: int | None = None,
        s_target_mm: float | None = None,
    ) -> Decision:
        self._pending.pop(tr.track_id, None)
        s_out = s_crossing(tr, self.params.window_y_end_mm)
        self._ledger.add(tr.track_id, max(s_out, s_now_mm) + self.params.forget_after_mm)
        return Decision.of(tr, action, reason, s_now_mm, t_now_ns, command_id, s_target_mm)
