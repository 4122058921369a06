"""Which commands a supervised link still owes an outcome, and when to restart it (pure logic).

A link that runs in a child process (:mod:`sorter.actuate.link_process`) can die
with commands in flight: the child's memory, and with it the link's own record of
what it sent, is gone. The parent keeps this ledger of every command it handed
over and not yet seen finish, so that a death finishes each of them as ``lost``
and ``sent`` still equals the sum of outcomes. The ledger is generic over the
outcome words: any status other than ``accepted`` ends a command, whatever new
outcomes the link learns to report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from firmware_bridge.link import EventStatus, LinkEvent

#: The one status that does not end a command (the controller queued it; its outcome is still to come).
NOT_FINAL = frozenset({"accepted"})

#: The outcome of a command the link can no longer account for (its process or thread died).
LOST = "lost"


def lost_event(command_id: int, reason: str) -> LinkEvent:
    """The ``lost`` outcome of a command, with the reason in words."""
    return LinkEvent(command_id, cast(EventStatus, LOST), detail=reason)


@dataclass
class CommandLedger:
    """Commands handed to the link without an outcome yet, and the outcomes counted so far.

    Attributes:
        outstanding: command id -> generation (link incarnation) it was handed to.
        outcomes: outcome word -> count (every final event counted once).
        sent: commands handed over.
        strays: final events for commands not outstanding (a second outcome, or news from an old incarnation):
            ignored, counted.
    """

    outstanding: dict[int, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    strays: int = 0

    def submitted(self, command_id: int, generation: int) -> None:
        """A command was handed to incarnation ``generation`` of the link."""
        self.sent += 1
        self.outstanding[command_id] = generation

    def accept(self, event: LinkEvent, generation: int) -> bool:
        """Count an event of incarnation ``generation``; False when it must not reach the caller (a stray).

        A final event ends its command once; a second final event, or one from an incarnation
        other than the command's, is a stray (the command was already finished, e.g. as ``lost``).
        """
        if event.status in NOT_FINAL:
            return self.outstanding.get(event.command_id) == generation
        if self.outstanding.get(event.command_id) != generation:
            self.strays += 1
            return False
        del self.outstanding[event.command_id]
        self.outcomes[event.status] = self.outcomes.get(event.status, 0) + 1
        return True

    def lose_all(self, reason: str) -> list[LinkEvent]:
        """Finish every outstanding command as ``lost`` (the link died); the events to hand to the caller."""
        lost = [lost_event(cid, reason) for cid in sorted(self.outstanding)]
        self.outstanding.clear()
        if lost:
            self.outcomes[LOST] = self.outcomes.get(LOST, 0) + len(lost)
        return lost

    def finished(self) -> int:
        """Commands with an outcome."""
        return sum(self.outcomes.values())

    def balanced(self) -> bool:
        """``sent == sum of outcomes + outstanding``: no command was forgotten."""
        return self.sent == self.finished() + len(self.outstanding)


@dataclass
class Backoff:
    """Restart delays: ``min_s`` doubling up to ``max_s``; a link that stayed up ``healthy_s`` starts again at ``min_s``.

    Times are host monotonic seconds, passed in (no clock in here).
    """

    min_s: float = 0.05
    max_s: float = 2.0
    healthy_s: float = 10.0
    _next_s: float = field(default=0.0, init=False)
    _t_up_s: float | None = field(default=None, init=False)

    def started(self, t_s: float) -> None:
        """The link (re)started at ``t_s``."""
        self._t_up_s = t_s

    def died(self, t_s: float) -> float:
        """The link died at ``t_s``: the delay before the next start, in seconds."""
        if self._t_up_s is not None and t_s - self._t_up_s >= self.healthy_s:
            self._next_s = 0.0
        delay = self._next_s
        self._next_s = min(self.max_s, max(self.min_s, 2 * self._next_s))
        self._t_up_s = None
        return delay
