"""Which commands a supervised link still owes an outcome, and when to restart it (pure logic).

A link that runs in a child process (:mod:`sorter.actuate.link_process`) can die
with commands in flight: the child's memory, and with it the link's own record of
what it sent, is gone. The parent keeps this ledger of every command it handed
over and not yet seen finish, with the epoch stamp and the controller's boot id it
was sent under, so that after a death the restarted link can ask the controller
what became of each (:meth:`CommandLedger.carry_over`, :meth:`CommandLedger.hand_over`);
a command sent before the controller's epoch was known cannot be asked about and
is finished ``lost``. ``sent`` always equals the sum of outcomes plus the outstanding.
The ledger is generic over the outcome words: any status other than ``accepted``
ends a command, whatever new outcomes the link learns to report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from firmware_bridge.link import EventStatus, LinkEvent
from firmware_bridge.messages import EPOCH_UNSET, Fire, Pick

#: The one status that does not end a command (the controller queued it; its outcome is still to come).
NOT_FINAL = frozenset({"accepted"})

#: The outcome of a command the link can no longer account for (its process or thread died).
LOST = "lost"

#: The generation of commands carried over from a dead link process, until the next one takes them.
CARRIED = 0

#: A command carried over to a restarted link: the command as sent (stamped with its epoch) and the boot id.
Carried = tuple[Fire | Pick, int]


def lost_event(command_id: int, reason: str) -> LinkEvent:
    """The ``lost`` outcome of a command, with the reason in words."""
    return LinkEvent(command_id, cast(EventStatus, LOST), detail=reason)


@dataclass
class CommandLedger:
    """Commands handed to the link without an outcome yet, and the outcomes counted so far.

    Attributes:
        outstanding: command id -> generation (link incarnation) it was handed to; ``CARRIED`` while it waits
            for a restarted link to ask the controller about it.
        outcomes: outcome word -> count (every final event counted once).
        sent: commands handed over.
        strays: final events for commands not outstanding (a second outcome, or news from an old incarnation):
            ignored, counted.
        carried: commands handed to a restarted link to be reconciled with the controller (running total).
    """

    outstanding: dict[int, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    strays: int = 0
    carried: int = 0
    _sent_as: dict[int, Carried] = field(default_factory=dict)  # command id -> (stamped command, boot id)
    _accepted: set[int] = field(default_factory=set)  # ids whose ``accepted`` reached the caller

    def submitted(self, command_id: int, generation: int, command: Fire | Pick | None = None,
                  boot_id: int | None = None) -> None:
        """A command was handed to incarnation ``generation`` of the link.

        Args:
            command: the command as handed over; with its epoch stamped and ``boot_id`` (the controller's boot
                id it was computed under) it can be reconciled after a death, else it is lost then.
        """
        self.sent += 1
        self.outstanding[command_id] = generation
        if command is not None and command.epoch != EPOCH_UNSET and boot_id is not None:
            self._sent_as[command_id] = (command, boot_id)

    def accept(self, event: LinkEvent, generation: int) -> bool:
        """Count an event of incarnation ``generation``; False when it must not reach the caller (a stray).

        A final event ends its command once; a second final event, or one from an incarnation
        other than the command's, is a stray (the command was already finished, e.g. as ``lost``).
        ``accepted`` reaches the caller once per command (a restarted link accepts it again).
        """
        cid = event.command_id
        if event.status in NOT_FINAL:
            if self.outstanding.get(cid) != generation or cid in self._accepted:
                return False
            self._accepted.add(cid)
            return True
        if self.outstanding.get(cid) != generation:
            self.strays += 1
            return False
        self._finish(cid, event.status)
        return True

    def _finish(self, command_id: int, status: str) -> None:
        del self.outstanding[command_id]
        self._sent_as.pop(command_id, None)
        self._accepted.discard(command_id)
        self.outcomes[status] = self.outcomes.get(status, 0) + 1

    def lose_all(self, reason: str) -> list[LinkEvent]:
        """Finish every outstanding command as ``lost`` (the link is closed); the events to hand to the caller."""
        lost = [lost_event(cid, reason) for cid in sorted(self.outstanding)]
        for e in lost:
            self._finish(e.command_id, LOST)
        return lost

    def carry_over(self, reason: str) -> list[LinkEvent]:
        """The link died: keep every command that a restarted link can ask the controller about (``CARRIED``).

        A command without an epoch stamp and boot id (handed over before the controller's epoch was known)
        cannot be matched with what the controller holds: it is finished ``lost``; the events are returned.
        """
        lost: list[LinkEvent] = []
        for cid in sorted(self.outstanding):
            if cid in self._sent_as:
                self.outstanding[cid] = CARRIED
            else:
                lost.append(lost_event(cid, f"{reason}; sent before the controller's epoch was known"))
                self._finish(cid, LOST)
        return lost

    def hand_over(self, generation: int) -> list[Carried]:
        """The carried commands, now handed to incarnation ``generation`` (which reconciles them), oldest first."""
        out = [self._sent_as[cid] for cid, gen in self.outstanding.items() if gen == CARRIED]
        for command, _boot in out:
            self.outstanding[command.command_id] = generation
        self.carried += len(out)
        return out

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
