"""The miss taxonomy: one primary cause for every target not recovered and every non-target removed.

The simulator knows the truth: which detections belonged to which object, which
track followed it, what the planner decided, which command it issued and what
the valves or the robot physically did. :func:`explain_run` walks that chain
for each failure from upstream to downstream and names the first link that
broke (:data:`~sorter.sim.explain_history.CAUSES`):

* ``not_visible``: never at least half visible and no confirmed track of its own
  (hidden under another object, or out of the image);
* ``never_detected``: visible, but no detection ever matched it;
* ``not_confirmed_in_time``: detected, but its track was never confirmed, or was
  confirmed only when it was already too late to act;
* ``wrong_class``: its track was decided with a wrong class (or too low a class
  confidence): a target taken for a non-target, or a non-target ejected as a target;
* ``track_lost_or_swapped``: its detections went to a track that followed
  another object, or its confirmed track ended without a decision;
* ``fire_position_off``: the shot or pick executed on time and missed it (or
  hit it when aimed at a neighbour);
* ``actuator_busy_or_rate_limited``: the robot was busy or its pick rate left no slot;
* ``commanded_late_or_dropped``: the command was dropped as late by the planner
  or the device, never executed, executed late or cut short;
* ``other``: policy (size limits, touching rules, out of reach), a non-target
  blown off with a well-aimed neighbouring target, a false-positive track.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sorter.sim.explain_history import CAUSES, Attribution, Cause, Kind, RunHistory, Sighting
from sorter.sim.records import ObjectFate

#: an object at least this visible in some frame could have been seen (the scoreboard's rule)
VISIBLE_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class ExplainParams:
    """Thresholds of the attribution.

    Attributes:
        visible_fraction: below this in every frame an object counts as not visible.
        late_tolerance_mm: a valve switched more than this past its commanded position was commanded late.
        fire_tolerance_mm: a shot whose error on its aimed object is within this was well aimed (a
            non-target blown off with it was a touching neighbour, not a fire-position error).
    """

    visible_fraction: float = VISIBLE_FRACTION
    late_tolerance_mm: float = 1.0
    fire_tolerance_mm: float = 10.0


class _Tracks:
    """Which true object each track followed, from the detections it was given."""

    def __init__(self, history: RunHistory) -> None:
        per_track: dict[int, Counter[int]] = {}
        last: dict[int, tuple[int, int]] = {}  # track -> (frame, object) of its last matched detection
        for oid, sightings in history.sightings.items():
            for s in sightings:
                if s.track_id:
                    per_track.setdefault(s.track_id, Counter())[oid] += 1
                    if s.track_id not in last or s.frame_index >= last[s.track_id][0]:
                        last[s.track_id] = (s.frame_index, oid)
        self._counts = per_track
        self._last = last

    def owner(self, track_id: int) -> int | None:
        """The object that gave the track most of its detections (``None``: only false positives)."""
        c = self._counts.get(track_id)
        if not c:
            return None
        return max(c.items(), key=lambda kv: (kv[1], -kv[0]))[0]

    def last_owner(self, track_id: int) -> int | None:
        """The object of the track's last matched detection."""
        v = self._last.get(track_id)
        return None if v is None else v[1]

    def hits(self, track_id: int, object_id: int) -> int:
        return self._counts.get(track_id, Counter())[object_id]


def _class(history: RunHistory, class_id: int) -> str:
    names = history.class_names
    return names[class_id] if 0 <= class_id < len(names) else f"class {class_id}"


class _Judge:
    def __init__(self, history: RunHistory, params: ExplainParams) -> None:
        self.h = history
        self.p = params
        self.tracks = _Tracks(history)

    def _make(
        self,
        fate: ObjectFate,
        kind: Kind,
        cause: Cause,
        detail: str,
        track_id: int = 0,
        command_id: int | None = None,
        tag: str = "",
    ) -> Attribution:
        seen: Sequence[Sighting] = self.h.sightings.get(fate.object_id, ())
        vis = max([fate.max_visible_fraction, *(s.visible_fraction for s in seen)], default=0.0)
        return Attribution(
            object_id=fate.object_id,
            class_id=fate.class_id,
            kind=kind,
            cause=cause,
            detail=detail,
            first_frame=seen[0].frame_index if seen else -1,
            last_frame=seen[-1].frame_index if seen else -1,
            track_id=track_id,
            command_id=command_id,
            max_visible_fraction=vis,
            tag=tag,
        )

    # ------------------------------------------------------------------ targets that passed
    def missed_target(self, fate: ObjectFate) -> Attribution:
        h, oid = self.h, fate.object_id
        seen = h.sightings.get(fate.object_id, ())
        vis = max([fate.max_visible_fraction, *(s.visible_fraction for s in seen)], default=0.0)
        det_tracks = Counter(s.track_id for s in seen if s.track_id)
        confirmed = [t for t in det_tracks if (n := h.tracks.get(t)) is not None and n.confirmed_frame is not None]
        own = [t for t in confirmed if self.tracks.owner(t) == oid]

        def make(cause: Cause, detail: str, track_id: int = 0, command_id: int | None = None, tag: str = "") -> Attribution:
            return self._make(fate, "target_missed", cause, detail, track_id, command_id, tag)

        if not own:
            if confirmed:
                t = max(confirmed, key=lambda k: det_tracks[k])
                return make(
                    "track_lost_or_swapped",
                    f"its detections went to track {t}, which followed object {self.tracks.owner(t)}",
                    t,
                )
            if vis < self.p.visible_fraction:
                return make("not_visible", f"at most {vis:.0%} visible in any frame")
            if not det_tracks:
                return make("never_detected", f"in {len(seen)} frame(s), up to {vis:.0%} visible, never detected")
            t = max(det_tracks, key=lambda k: det_tracks[k])
            n_det = sum(det_tracks.values())
            return make(
                "not_confirmed_in_time",
                f"detected in {n_det} of {len(seen)} frame(s) on {len(det_tracks)} track(s), none confirmed",
                t,
            )
        t = self._judged_track(own, oid)
        d = h.decisions.get(t)
        if d is None:
            return make("track_lost_or_swapped", f"track {t} was confirmed but never decided (lost before a decision)", t)
        if d.action == "not_target":
            if d.class_id != fate.class_id:
                detail = f"decided as {_class(h, d.class_id)} ({d.class_confidence:.2f}), is {_class(h, fate.class_id)}"
                return make("wrong_class", detail, t)
            if "confidence" in d.reason:
                return make("wrong_class", f"right class, but {d.reason}", t)
            return make("other", f"policy: {d.reason}", t, tag="policy")
        if d.action == "skip":
            if "rate" in d.reason or "busy" in d.reason:
                return make("actuator_busy_or_rate_limited", d.reason, t)
            return make("other", f"skipped: {d.reason}", t, tag="skipped")
        if d.action == "late":
            note = h.tracks[t]
            if note.confirmed_frame is not None and note.confirmed_frame >= d.frame_index:
                return make("not_confirmed_in_time", f"confirmed in frame {note.confirmed_frame}, too late: {d.reason}", t)
            return make("commanded_late_or_dropped", f"planner dropped it as late: {d.reason}", t)
        if d.action in ("eject", "pick") and d.command_id is not None:
            last = self.tracks.last_owner(t)
            if last is not None and last != oid:
                return make("track_lost_or_swapped", f"track {t} ended on object {last} and was shot there", t, d.command_id)
            return self._execution(fate, t, d.command_id, make)
        return make("other", f"decision {d.action}: {d.reason}", t, d.command_id, tag="decision")

    def _judged_track(self, own: list[int], object_id: int) -> int:
        """Of the object's own confirmed tracks, the one that got furthest down the chain."""
        rank = {"eject": 0, "pick": 0, "late": 1, "skip": 2, "not_target": 3}

        def key(t: int) -> tuple[int, int, int]:
            d = self.h.decisions.get(t)
            return (rank.get(d.action, 4) if d else 5, -self.tracks.hits(t, object_id), t)

        return min(own, key=key)

    def _execution(self, fate: ObjectFate, t: int, cmd: int, make: Callable[..., Attribution]) -> Attribution:
        h = self.h
        if cmd in h.picks:
            pk = h.picks[cmd]
            if pk.busy:
                return make("actuator_busy_or_rate_limited", f"robot still busy when pick {cmd} was due", t, cmd)
            if pk.success and pk.object_id != fate.object_id:
                return make("fire_position_off", f"pick {cmd} took object {pk.object_id} instead", t, cmd)
            err = "?" if pk.error_mm is None else f"{pk.error_mm:.0f}"
            return make("fire_position_off", f"pick {cmd} missed: gripper {err} mm from the nearest centre", t, cmd)
        p = h.pulses.get(cmd)
        if p is None:
            return make("commanded_late_or_dropped", f"command {cmd} never executed (late, rejected, cancelled or lost)", t, cmd)
        late_mm = p.s_switch_mm - p.s_open_cmd_mm
        if late_mm > self.p.late_tolerance_mm:
            return make("commanded_late_or_dropped", f"command {cmd} reached the valves {late_mm:.0f} mm late", t, cmd)
        if p.truncated:
            return make("commanded_late_or_dropped", f"pulse {cmd} cut short by the watchdog", t, cmd)
        err = "none near" if p.fire_position_error_mm is None else f"{p.fire_position_error_mm:+.0f} mm"
        return make("fire_position_off", f"pulse {cmd} missed (error {err} on object {p.hit_object_id})", t, cmd)

    # ------------------------------------------------------------------ non-targets removed
    def removed_nontarget(self, fate: ObjectFate) -> Attribution:
        h, oid = self.h, fate.object_id

        def make(cause: Cause, detail: str, track_id: int = 0, command_id: int | None = None, tag: str = "") -> Attribution:
            return self._make(fate, "nontarget_removed", cause, detail, track_id, command_id, tag)

        cmd = fate.command_id
        c = h.commands.get(cmd) if cmd is not None else None
        if cmd is None or c is None:
            return make("other", f"removed by command {cmd}, which the planner did not issue", 0, cmd, tag="unknown_command")
        t = c.track_id
        owner = self.tracks.owner(t)
        d = h.decisions.get(t)
        decided = f"decided as {_class(h, d.class_id)} ({d.class_confidence:.2f})" if d is not None else "decided"
        if owner == oid:
            return make("wrong_class", f"track {t} {decided}, is {_class(h, fate.class_id)}", t, cmd)
        if owner is None:
            return make(
                "other", f"track {t} was a false positive (no object behind its detections)", t, cmd, tag="false_positive"
            )
        if self.tracks.last_owner(t) == oid:
            return make("track_lost_or_swapped", f"track {t} of object {owner} ended on this one", t, cmd)
        p = h.pulses.get(cmd)
        if p is not None:
            err = p.fire_position_error_mm
            if p.hit_object_id == owner and err is not None and abs(err) <= self.p.fire_tolerance_mm:
                return make(
                    "other",
                    f"blown off with its neighbour, object {owner} (track {t}, error {err:+.0f} mm)",
                    t,
                    cmd,
                    tag="neighbour",
                )
            e = "none near" if err is None else f"{err:+.0f} mm on object {p.hit_object_id}"
            return make("fire_position_off", f"pulse {cmd} for object {owner} (track {t}) hit it: error {e}", t, cmd)
        return make("fire_position_off", f"pick {cmd} for object {owner} (track {t}) took it", t, cmd)


def explain_run(history: RunHistory, params: ExplainParams | None = None) -> list[Attribution]:
    """One attribution per sorting failure of a finished (or running) simulated run.

    Judges only fates the scoreboard counts (``counted``): every target that
    passed and every non-target ejected or picked. The number of attributions
    of kind ``target_missed`` equals the scoreboard's ``targets_passed`` minus
    the targets removed; those of kind ``nontarget_removed`` equal its
    ``nontargets_ejected + nontargets_picked``.
    """
    judge = _Judge(history, params or ExplainParams())
    out: list[Attribution] = []
    for fate in history.fates:
        if not fate.counted:
            continue
        target = fate.class_id in history.target_class_ids
        if target and fate.fate == "passed":
            out.append(judge.missed_target(fate))
        elif not target and fate.fate in ("ejected", "picked"):
            out.append(judge.removed_nontarget(fate))
    return out


def cause_counts(attributions: Sequence[Attribution]) -> dict[str, dict[str, int]]:
    """Per cause (every cause of the fixed list, in order): ``target_missed``, ``nontarget_removed``, ``total``."""
    out = {c: {"target_missed": 0, "nontarget_removed": 0, "total": 0} for c in CAUSES}
    for a in attributions:
        row = out[a.cause]
        row[a.kind] += 1
        row["total"] += 1
    return out


def worst_cases(attributions: Sequence[Attribution], n: int = 8, per_cause: int = 2) -> list[Attribution]:
    """The cases worth a look first: up to ``per_cause`` of each cause, the most visible ones first, most frequent cause first."""
    counts = Counter(a.cause for a in attributions)
    picked: list[Attribution] = []
    for cause, _ in counts.most_common():
        same = sorted((a for a in attributions if a.cause == cause), key=lambda a: (-a.max_visible_fraction, a.object_id))
        picked.extend(same[:per_cause])
    return picked[:n]


def explain_summary(attributions: Sequence[Attribution], class_names: Sequence[str] = (), max_cases: int = 200) -> dict[str, Any]:
    """The ``explain`` section of the run JSON: counts per cause and the cases (first ``max_cases``)."""

    def name(c: int) -> str:
        return class_names[c] if 0 <= c < len(class_names) else str(c)

    return {
        "targets_missed": sum(a.kind == "target_missed" for a in attributions),
        "nontargets_removed": sum(a.kind == "nontarget_removed" for a in attributions),
        "causes": cause_counts(attributions),
        "other_by_kind": dict(Counter(a.tag or "unspecified" for a in attributions if a.cause == "other").most_common()),
        "cases": [
            {
                "object_id": a.object_id,
                "class": name(a.class_id),
                "kind": a.kind,
                "cause": a.cause,
                "detail": a.detail,
                "first_frame": a.first_frame,
                "last_frame": a.last_frame,
                "track_id": a.track_id,
                "command_id": a.command_id,
                "max_visible_fraction": round(a.max_visible_fraction, 3),
                **({"other_kind": a.tag} if a.cause == "other" else {}),
            }
            for a in attributions[:max_cases]
        ],
        "cases_left_out": max(0, len(attributions) - max_cases),
    }


def cause_table(explain: dict[str, Any], max_cases: int = 0) -> str:
    """The cause counts as a plain-text table (for the end-of-run print), then up to ``max_cases`` cases, one a line."""
    rows = [f"{'cause':<31} {'targets missed':>14} {'non-targets removed':>19}"]
    for cause, row in explain["causes"].items():
        if row["total"]:
            rows.append(f"{cause:<31} {row['target_missed']:>14} {row['nontarget_removed']:>19}")
    rows.append(f"{'all':<31} {explain['targets_missed']:>14} {explain['nontargets_removed']:>19}")
    cases = explain["cases"][:max_cases]
    for c in cases:
        rows.append(
            f"  object {c['object_id']} ({c['class']}, {c['kind'].replace('_', ' ')}): {c['cause']}, "
            f"frame {c['first_frame']}, track {c['track_id'] or '-'}: {c['detail']}"
        )
    if len(explain["cases"]) > len(cases) and cases:
        rows.append(f"  ... {len(explain['cases']) - len(cases)} more in the summary JSON")
    return "\n".join(rows)
