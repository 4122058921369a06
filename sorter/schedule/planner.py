"""Air-jet planner: one decision per confirmed track, one position-stamped shot per target.

A track is decided once no further measurement can improve the decision
(retired, or its centre has left the camera view) or when it is within
``decide_before_mm`` of the ejection line, whichever comes first; until then
the tracker keeps refining it and the planner waits. The decision is final:
a track never gets a second command. The live tracks come as columns
(:class:`~sorter.entities.TrackColumns`): the planner finds the few whose
decision may be due on the columns and takes ``Track`` entities of those alone.

Command positions (odometer mm, see ``timing.py``): the air spans the object
plus ``margin_mm`` plus ``sigma_k`` sigma of its predicted along-belt
uncertainty on each side, clamped to the pulse limits, and is issued
``speed x latency`` earlier to compensate the valve latency. A command whose
opening position is not at least ``safety_margin_mm`` ahead of the current
odometer is late: dropped and counted, never sent.

A target whose footprint on the line (belt plane, predicted at its crossing)
lies for ``DUPLICATE_SHARE`` or more inside the footprint of a target whose
command is still to close is skipped ("same object as command N"): two tracks
of one object (or one object lying on another) would otherwise fire twice, the
second shot centred on nothing. Neighbours, even one lying partly on a target,
overlap far less (17-51 % where measured on the dense belt) and are each shot.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat

from sorter.entities import Command, FireCommand, Track, TrackColumns
from sorter.schedule.policy import PolicyParams, touching, touching_verdict, why_not_target
from sorter.schedule.results import Decision, DecisionLedger, PlanResult
from sorter.schedule.timing import ValveBank, air_window, decision_due, lead_mm, maybe_due, s_crossing

logger = logging.getLogger(__name__)

#: share of a target's footprint inside an already commanded one above which it is taken for the same object
DUPLICATE_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class _Footprint:
    """A target's footprint on the ejection line: belt odometer along it, belt ``x_mm`` across."""

    s_target_mm: float
    half_length_mm: float
    x_mm: float
    half_width_mm: float

    def share_inside(self, other: _Footprint) -> float:
        """Share of ``other``'s area inside this footprint."""
        along = _shared_mm(self.s_target_mm, self.half_length_mm, other.s_target_mm, other.half_length_mm)
        across = _shared_mm(self.x_mm, self.half_width_mm, other.x_mm, other.half_width_mm)
        area = 4.0 * other.half_length_mm * other.half_width_mm
        return along * across / area if area > 0 else 0.0


def _shared_mm(centre_a_mm: float, half_a_mm: float, centre_b_mm: float, half_b_mm: float) -> float:
    """Length two intervals given by centre and half-length share (0 when apart)."""
    return max(0.0, min(centre_a_mm + half_a_mm, centre_b_mm + half_b_mm) - max(centre_a_mm - half_a_mm, centre_b_mm - half_b_mm))


@dataclass(frozen=True, slots=True)
class AirjetParams:
    """Geometry and timing of an air-jet ejector.

    Attributes:
        y_eject_mm: ejection line, world ``y_w_mm``.
        valve_count: valves in the bank.
        valve_pitch_mm: lateral width of one valve's air.
        valve_x_first_mm: left edge of valve 0's air, belt ``x_mm``.
        latency_ms: command-to-air delay, compensated by a lead of speed x latency.
        valve_latency_ms: measured delay of each valve (index = valve); empty: ``latency_ms`` for all. A shot
            over several valves opens with the lead of the slowest and closes with that of the fastest, so every
            valve's air covers the object.
        min_pulse_ms: shortest pulse the valves make reliably.
        max_pulse_ms: longest pulse allowed (air consumption, coil heating).
        margin_mm: extra air before and after the object along the belt.
        lateral_margin_mm: extra width on each side when choosing valves.
        decide_before_mm: decide at the latest when the predicted centre is
            this far upstream of the ejection line.
        view_end_y_mm: downstream end of the camera view; a track whose centre
            is past it gets no more measurements and is decided.
        policy: what to eject.
        safety_margin_mm: a command whose opening position is within this of
            the current odometer is late (link and controller latency).
        sigma_k: multiples of the predicted along-belt sigma added to the air span.
        forget_after_mm: travel past the line after which a decided track id is forgotten.
    """

    y_eject_mm: float
    valve_count: int = 64
    valve_pitch_mm: float = 18.75
    valve_x_first_mm: float = 0.0
    latency_ms: float = 3.0
    valve_latency_ms: tuple[float, ...] = ()
    min_pulse_ms: float = 4.0
    max_pulse_ms: float = 80.0
    margin_mm: float = 10.0
    lateral_margin_mm: float = 5.0
    decide_before_mm: float = 150.0
    view_end_y_mm: float = 360.0
    policy: PolicyParams = field(default_factory=PolicyParams)
    safety_margin_mm: float = 20.0
    sigma_k: float = 2.0
    forget_after_mm: float = 2000.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.valve_count < 1:
            problems.append(f"AirjetParams.valve_count = {self.valve_count} must be >= 1")
        if self.valve_pitch_mm <= 0:
            problems.append(f"AirjetParams.valve_pitch_mm = {self.valve_pitch_mm!r} must be > 0")
        if not 0 < self.min_pulse_ms <= self.max_pulse_ms:
            problems.append(
                f"AirjetParams.min_pulse_ms = {self.min_pulse_ms!r}, max_pulse_ms = {self.max_pulse_ms!r}: need 0 < min <= max"
            )
        non_negative = {
            "latency_ms": self.latency_ms,
            "margin_mm": self.margin_mm,
            "lateral_margin_mm": self.lateral_margin_mm,
            "decide_before_mm": self.decide_before_mm,
            "safety_margin_mm": self.safety_margin_mm,
            "sigma_k": self.sigma_k,
            "forget_after_mm": self.forget_after_mm,
        }
        problems += [f"AirjetParams.{k} = {v!r} must be >= 0" for k, v in non_negative.items() if not v >= 0]
        if self.valve_latency_ms and (
            len(self.valve_latency_ms) != self.valve_count or not all(v >= 0 for v in self.valve_latency_ms)
        ):
            problems.append(f"AirjetParams.valve_latency_ms needs {self.valve_count} values >= 0 (one per valve), or none")
        if self.y_eject_mm <= self.view_end_y_mm:
            problems.append(
                f"AirjetParams.y_eject_mm = {self.y_eject_mm!r} must lie downstream of the camera view "
                f"(view_end_y_mm = {self.view_end_y_mm!r})"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def bank(self) -> ValveBank:
        """The valve bank geometry."""
        return ValveBank(self.valve_count, self.valve_pitch_mm, self.valve_x_first_mm)


class AirjetPlanner:
    """Decides once per confirmed track and issues at most one :class:`FireCommand` for it.

    Not thread-safe: call :meth:`plan` from the main loop after each tracker update.
    """

    def __init__(self, params: AirjetParams, first_command_id: int = 1) -> None:
        self.params = params
        self._bank = self.params.bank
        self._ledger = DecisionLedger()
        self._ids = itertools.count(first_command_id)
        # latest version of every confirmed track near the line (neighbours for the touching check): a retired Track,
        # or the columns it was last seen live in
        self._recent: dict[int, Track | TrackColumns] = {}
        self._recent_pruned_at_mm = -float("inf")
        self._index: tuple[TrackColumns | None, dict[int, int]] = (None, {})  # columns and the column of each id there
        # commands not closed yet, in issue order, with their target's footprint
        self._issued: list[tuple[FireCommand, _Footprint]] = []

    def plan(
        self, active: Sequence[Track], retired: Sequence[Track], s_now_mm: float, speed_mm_s: float, t_now_ns: int
    ) -> PlanResult:
        """Decide on every track that is due and return the new commands.

        Args:
            active: live tracks from the tracker (tentative ones are ignored), best as
                :class:`~sorter.entities.TrackColumns` (what the tracker hands out; other sequences are converted).
            retired: tracks the tracker retired in its last update.
            s_now_mm: current belt odometer (extrapolated to now).
            speed_mm_s: current belt speed, for the latency lead and pulse limits.
            t_now_ns: current host time, stamped on commands and decisions.
        """
        p = self.params
        live = TrackColumns.of(active)
        self._ledger.prune(s_now_mm)
        self._remember(live, retired, s_now_mm)
        if self._issued:
            self._issued = [cf for cf in self._issued if cf[0].s_close_mm >= s_now_mm]
        commands: list[Command] = []
        decisions: list[Decision] = []
        due, due_ids = maybe_due(live, s_now_mm, p.view_end_y_mm, p.y_eject_mm, p.decide_before_mm)
        decided = self._ledger.ids
        fresh = (live[k] for k, tid in zip(due, due_ids, strict=True) if tid not in decided)
        for tr, is_retired in itertools.chain(zip(fresh, repeat(False)), zip(retired, repeat(True))):
            if not tr.confirmed or tr.track_id in self._ledger:
                continue
            if not decision_due(tr, is_retired, s_now_mm, p.view_end_y_mm, p.y_eject_mm, p.decide_before_mm):
                continue
            if s_crossing(tr, p.y_eject_mm) + p.forget_after_mm < s_now_mm:
                continue  # long gone (a stale track handed in again): decided before and forgotten
            decision, cmd = self._decide(tr, s_now_mm, speed_mm_s, t_now_ns)
            s_target = decision.s_target_mm if decision.s_target_mm is not None else s_now_mm
            self._ledger.add(tr.track_id, s_target + p.forget_after_mm)
            decisions.append(decision)
            if cmd is not None:
                commands.append(cmd)
        late = sum(d.action == "late" for d in decisions)
        skipped = sum(d.action == "skip" for d in decisions)
        return PlanResult(commands=tuple(commands), decisions=tuple(decisions), late_dropped=late, skipped=skipped)

    # ------------------------------------------------------------------ decision
    def _decide(self, tr: Track, s_now_mm: float, speed_mm_s: float, t_now_ns: int) -> tuple[Decision, FireCommand | None]:
        p = self.params
        s_target = s_crossing(tr, p.y_eject_mm)
        reason = why_not_target(tr, p.policy)
        if reason is not None:
            return Decision.of(tr, "not_target", reason, s_now_mm, t_now_ns, s_target_mm=s_target), None
        if p.policy.touching_nontarget != "eject":  # neighbours matter only to a policy that looks at them
            verdict = touching_verdict(tr, self._touching_nontargets(tr, s_target), p.policy)
            if verdict is not None:
                return Decision.of(tr, "skip", verdict, s_now_mm, t_now_ns, s_target_mm=s_target), None
        _, x_mm, _, _ = tr.predict(s_target)
        half_w = tr.width_mm / 2.0 + p.lateral_margin_mm
        valves = self._bank.valves_covering(x_mm - half_w, x_mm + half_w)
        if valves is None:
            reason = f"x {x_mm:.0f} mm +- {half_w:.0f} mm misses the valve bank"
            return Decision.of(tr, "skip", reason, s_now_mm, t_now_ns, s_target_mm=s_target), None
        win = air_window(tr, p.y_eject_mm, p.margin_mm, p.sigma_k, speed_mm_s, p.min_pulse_ms, p.max_pulse_ms)
        if p.valve_latency_ms:
            lat = p.valve_latency_ms[valves[0] : valves[1] + 1]
            s_open = win.s_open_mm - lead_mm(speed_mm_s, max(lat))
            s_close = win.s_close_mm - lead_mm(speed_mm_s, min(lat))
        else:
            lead = lead_mm(speed_mm_s, p.latency_ms)
            s_open = win.s_open_mm - lead
            s_close = win.s_close_mm - lead
        if s_open <= s_now_mm + p.safety_margin_mm:
            reason = f"opening at {s_open:.0f} mm is not {p.safety_margin_mm:.0f} mm ahead of the odometer {s_now_mm:.0f} mm"
            logger.debug("track %d late: %s", tr.track_id, reason)
            return Decision.of(tr, "late", reason, s_now_mm, t_now_ns, s_target_mm=s_target), None
        here = _Footprint(s_target, tr.length_mm / 2.0, x_mm, tr.width_mm / 2.0)
        for c, there in self._issued:
            share = there.share_inside(here)
            if share >= DUPLICATE_SHARE:
                reason = f"same object as command {c.command_id} (track {c.track_id}): {share:.0%} of it inside that target"
                return Decision.of(tr, "skip", reason, s_now_mm, t_now_ns, s_target_mm=s_target), None
        cmd = FireCommand(
            command_id=next(self._ids),
            track_id=tr.track_id,
            valve_first=valves[0],
            valve_last=valves[1],
            s_open_mm=s_open,
            s_close_mm=s_close,
            s_target_mm=s_target,
            class_id=tr.class_id,
            t_issue_ns=t_now_ns,
        )
        self._issued.append((cmd, here))
        reason = f"pulse clamped to {win.clamped}" if win.clamped else ""
        return Decision.of(tr, "eject", reason, s_now_mm, t_now_ns, cmd.command_id, s_target), cmd

    # ------------------------------------------------------------------ neighbours
    def _remember(self, live: TrackColumns, retired: Sequence[Track], s_now_mm: float) -> None:
        recent = self._recent
        recent.update(dict.fromkeys(live.track_id[live.confirmed].tolist(), live))
        for tr in retired:
            if tr.confirmed:
                recent[tr.track_id] = tr
        if s_now_mm - self._recent_pruned_at_mm > 200.0:
            self._recent_pruned_at_mm = s_now_mm
            limit = self.params.y_eject_mm + 500.0 - s_now_mm  # in belt-fixed u
            live_gone = set(live.track_id[live.u_mm > limit].tolist())
            gone = [tid for tid, v in recent.items() if (tid in live_gone if v is live else self._read(tid, v, "u_mm") > limit)]
            for tid in gone:
                del recent[tid]

    def _read(self, track_id: int, version: Track | TrackColumns, name: str) -> float:
        """Field ``name`` of a remembered track, without building a ``Track`` for one seen live."""
        if isinstance(version, Track):
            value: float = getattr(version, name)
            return value
        return float(getattr(version, name).item(self._column(version, track_id)))

    def _column(self, cols: TrackColumns, track_id: int) -> int:
        """Column of ``track_id`` in ``cols`` (an index of the columns' ids, built when first needed)."""
        if self._index[0] is not cols:
            self._index = (cols, dict(zip(cols.track_id.tolist(), range(len(cols)), strict=True)))
        return self._index[1][track_id]

    def _touching_nontargets(self, target: Track, s_target_mm: float) -> list[Track]:
        p = self.params
        # coarse along-belt prefilter in belt-fixed u (100 mm of slack for residual motion), then the exact test
        slack = p.policy.touching_gap_mm + 100.0 + target.length_mm / 2.0
        u_t = target.u_mm
        near: list[Track] = []
        for tid, version in self._recent.items():
            if abs(self._read(tid, version, "u_mm") - u_t) - self._read(tid, version, "length_mm") / 2.0 < slack:
                t = version if isinstance(version, Track) else version[self._column(version, tid)]
                if t.track_id != target.track_id and why_not_target(t, p.policy) is not None:
                    near.append(t)
        return touching(target, near, s_target_mm, p.policy.touching_gap_mm)
