"""What a planner returns, and its memory of which tracks are already decided."""

from __future__ import annotations

import heapq
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal

from sorter.entities import Command, Track

Action = Literal["eject", "pick", "skip", "late", "not_target"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The one decision taken about a confirmed track (for the event log).

    Attributes:
        track_id: the track.
        action: ``"eject"``/``"pick"`` (a command was issued), ``"skip"`` (a
            target left alone by policy, reach or rate limit), ``"late"`` (a
            target whose command could no longer be executed on time: dropped),
            ``"not_target"``.
        reason: human-readable why (empty for a plain eject/pick).
        class_id: class of the track at decision time.
        class_confidence: its class confidence.
        s_decided_mm: odometer when decided.
        t_decided_ns: host time when decided.
        command_id: the command issued, if any.
        s_target_mm: odometer at which the object is on the ejection line or
            picked (``None`` when not computed).
    """

    track_id: int
    action: Action
    reason: str
    class_id: int
    class_confidence: float
    s_decided_mm: float
    t_decided_ns: int
    command_id: int | None = None
    s_target_mm: float | None = None

    @staticmethod
    def of(
        track: Track,
        action: Action,
        reason: str,
        s_now_mm: float,
        t_now_ns: int,
        command_id: int | None = None,
        s_target_mm: float | None = None,
    ) -> Decision:
        """Decision about ``track`` taken now."""
        return Decision(
            track_id=track.track_id,
            action=action,
            reason=reason,
            class_id=track.class_id,
            class_confidence=track.class_confidence,
            s_decided_mm=s_now_mm,
            t_decided_ns=t_now_ns,
            command_id=command_id,
            s_target_mm=s_target_mm,
        )


@dataclass(frozen=True, slots=True)
class PlanResult:
    """Output of one ``plan()`` call.

    Attributes:
        commands: new commands to send, in issue order (unique increasing ids).
        decisions: decisions taken in this call, one per track over the run.
        late_dropped: targets whose command could no longer be executed on time
            (dropped, never emitted).
        skipped: targets not acted upon by policy, reach or rate limit.
    """

    commands: tuple[Command, ...]
    decisions: tuple[Decision, ...]
    late_dropped: int
    skipped: int


class DecisionLedger:
    """Track ids already decided, forgotten once the object is far past.

    A decided id is kept until the odometer passes ``s_forget_mm``, so the
    same track, even if handed in again, is never decided twice while it can
    still matter; memory stays bounded on an endless belt.
    """

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._expiry: list[tuple[float, int]] = []

    def __contains__(self, track_id: int) -> bool:
        return track_id in self._ids

    @property
    def ids(self) -> AbstractSet[int]:
        """The decided track ids, read-only (a view: it changes as decisions are added and forgotten)."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, track_id: int, s_forget_mm: float) -> None:
        """Record a decision, kept until the odometer passes ``s_forget_mm``."""
        self._ids.add(track_id)
        heapq.heappush(self._expiry, (s_forget_mm, track_id))

    def prune(self, s_now_mm: float) -> None:
        """Forget decisions whose objects are long gone."""
        exp = self._expiry
        while exp and exp[0][0] < s_now_mm:
            _, tid = heapq.heappop(exp)
            self._ids.discard(tid)
