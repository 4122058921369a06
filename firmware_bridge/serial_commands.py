"""The timing and the commands of a serial host session (pure book-keeping, no I/O, no clock).

Each command is WAITING (to be sent or resent), IN_FLIGHT (sent, awaiting ACK/NAK)
or ACCEPTED (queued by the controller, awaiting its report). Per-state indexes keep
timers at O(window), not O(queue), with 10,000 commands queued; WAITING commands are
kept twice, in submission order (sent first-in first-out, so the controller sees them
in the planner's order) and by first position (expired from the top). Every command
ends in one outcome, reported as a ``LinkEvent``.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from firmware_bridge.link import EventStatus, LinkEvent
from firmware_bridge.messages import Fire, Message, Pick

MS = 1_000_000

COUNTERS = (
    "sent",
    "retransmits",
    "acked",
    "accepted",
    "executed",
    "late",
    "late_local",
    "rejected",
    "cancelled",
    "lost",
    "epoch_changes",
    "nak_wrong_epoch",
    "nak_unknown_reason",
    "nak_unmatched",
    "unknown_types",
    "protocol_errors",
    "nak_queue_full",
    "nak_other",
    "no_answer",
    "bad_frames",
    "faults",
    "watchdog_faults",
    "rearms",
    "reconnects",
    "heartbeats",
    "heartbeat_gap_ms_max",  # longest time between two HEARTBEATs handed to the port while connected
    "heartbeats_late",  # HEARTBEATs handed to the port more than two periods after the one before
    "resent_after_rearm",
    "backoffs",
    "report_queries",
    "adopted",
    "executed_after_outcome",  # an execution report for a command already finished late, rejected or cancelled
)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Timing of the host side (all host monotonic nanoseconds).

    Attributes:
        ack_timeout_ns: no ACK/NAK within this -> retransmit.
        max_retries: retransmissions per command after the first send.
        heartbeat_ns: HEARTBEAT period (must be well under the controller's watchdog, 100 ms).
        ping_ns: PING period for clock/encoder sync.
        status_ns: STATUS_REQUEST period.
        window: commands sent but not yet answered, at most.
        backoff_min_ns: first pause after a QUEUE_FULL.
        backoff_max_ns: longest pause (doubling from the first).
        predict_late: also skip sending when the *extrapolated* count says the position has passed
            (needs a belt that moves in host time; leave off in a simulation with its own clock).
        late_guard_ns: with ``predict_late``, time margin added to the one-way delay.
        hello_retry_ns: STATUS_REQUEST period while waiting for the STATUS that precedes or confirms an ARM.
        give_up_ns: port lost this long: every outstanding command is finished ``lost``.
        resync_hold_ns: after an epoch change, commands submitted within this are finished ``lost``
            (their positions may still come from the old epoch's odometer).
        max_counts_per_s: fastest the controller's count can move; a larger jump between two PONGs (over the
            longer of the host's span and the controller's clock) is treated as an epoch change (0: only
            backwards moves are checked). The sorter sets it from the belt's top speed.
        backward_tolerance_counts: encoder jitter backwards allowed before a count counts as reset.
    """

    ack_timeout_ns: int = 20 * MS
    max_retries: int = 3
    heartbeat_ns: int = 25 * MS
    ping_ns: int = 200 * MS
    status_ns: int = 500 * MS
    window: int = 32
    backoff_min_ns: int = 2 * MS
    backoff_max_ns: int = 200 * MS
    predict_late: bool = False
    late_guard_ns: int = 1 * MS
    hello_retry_ns: int = 50 * MS
    give_up_ns: int = 2000 * MS
    resync_hold_ns: int = 250 * MS
    max_counts_per_s: float = 0.0
    backward_tolerance_counts: int = 64


@dataclass(slots=True)
class PendingFrame:
    """A non-command frame awaiting its ACK (ARM, DISARM, CANCEL)."""

    message: Message
    sent_ns: int
    tries: int = 1


class CommandState(Enum):
    WAITING = "waiting"  # to be sent (or resent)
    IN_FLIGHT = "in_flight"  # sent, awaiting ACK/NAK
    ACCEPTED = "accepted"  # queued in the controller, awaiting FIRED/PICKED


@dataclass(slots=True)
class QueuedCommand:
    """A command without an outcome yet."""

    command: Fire | Pick
    state: CommandState = CommandState.WAITING
    sent_ns: int = 0
    tries: int = 0
    not_before_ns: int = 0
    accepted_reported: bool = False
    order: int = 0  # submission order: commands are sent first-in first-out
    token: int = 0  # identifies its current heap entries (older entries are stale)
    overdue_since_ns: int = 0  # when the encoder was first seen past its end without a report
    queries: int = 0  # resent to ask for a lost report
    query: bool = False  # resent to ask: the controller may hold it, so only its answer can say late (never finished here)
    cancel_wanted: bool = False  # cancelled while a query: the CANCEL follows the query (the controller may hold it)


def first_count(c: Fire | Pick) -> int:
    """The first position of a command (open count, or pick count)."""
    return c.open_count if isinstance(c, Fire) else c.pick_count


def last_count_of(c: Fire | Pick) -> int:
    """The last position of a command (close count, or pick count)."""
    return c.close_count if isinstance(c, Fire) else c.pick_count


#: heap entry: (key, token, command id); stale once the command left WAITING or was re-queued
Entry = tuple[int, int, int]


class CommandQueue:
    """Commands of one serial session, by state, with their outcomes.

    Args:
        counters: the session's counters (an outcome counts under its status).
        on_finish: called with the id of every command that gets its outcome.
    """

    def __init__(self, counters: dict[str, int], on_finish: Callable[[int], None]) -> None:
        self.counters = counters
        self._on_finish = on_finish
        self.cmds: dict[int, QueuedCommand] = {}
        self.waiting: dict[int, None] = {}
        self.in_flight: dict[int, None] = {}
        self.accepted: dict[int, None] = {}
        self.send_order: list[Entry] = []
        self.by_position: list[Entry] = []
        self.queries: list[int] = []  # waiting queries whose positions passed: sent before anything else
        self._orders = itertools.count()
        self._tokens = itertools.count(1)
        self._finished: OrderedDict[int, EventStatus] = OrderedDict()
        self._events: list[LinkEvent] = []

    def add(self, command: Fire | Pick) -> None:
        """Queue a new command (a known id, pending or finished, is ignored)."""
        cid = command.command_id
        if cid in self.cmds or cid in self._finished:
            return
        self.cmds[cid] = QueuedCommand(command, order=next(self._orders))
        self.set_state(cid, self.cmds[cid], CommandState.WAITING)

    def set_state(self, cid: int, c: QueuedCommand, state: CommandState) -> None:
        for index in (self.waiting, self.in_flight, self.accepted):
            index.pop(cid, None)
        c.state = state
        if state == CommandState.WAITING:
            self.waiting[cid] = None
            c.token = next(self._tokens)
            heapq.heappush(self.send_order, (c.order, c.token, cid))
            heapq.heappush(self.by_position, (first_count(c.command), c.token, cid))
        elif state == CommandState.IN_FLIGHT:
            self.in_flight[cid] = None
        else:
            self.accepted[cid] = None

    def valid(self, entry: Entry) -> QueuedCommand | None:
        """The command of a heap entry, or None when the entry is stale."""
        c = self.cmds.get(entry[2])
        return c if c is not None and c.state == CommandState.WAITING and c.token == entry[1] else None

    def top(self) -> QueuedCommand | None:
        """The next waiting command to send (stale heap entries dropped)."""
        heap = self.send_order
        while heap:
            c = self.valid(heap[0])
            if c is not None:
                return c
            heapq.heappop(heap)
        return None

    def pop_top(self) -> int:
        """Remove the entry of :meth:`top` from the send order; returns its command id."""
        return heapq.heappop(self.send_order)[2]

    def first_expirable(self, floor: int) -> bool:
        """True when a waiting command's first position is at or below ``floor`` (stale entries dropped)."""
        while self.by_position and self.valid(self.by_position[0]) is None:
            heapq.heappop(self.by_position)
        return bool(self.by_position) and self.by_position[0][0] <= floor

    def event(self, cid: int, status: EventStatus, **kw: object) -> None:
        self._events.append(LinkEvent(cid, status, **kw))  # type: ignore[arg-type]

    def take_events(self) -> list[LinkEvent]:
        ev, self._events = self._events, []
        return ev

    def finish(self, cid: int, status: EventStatus, **kw: object) -> bool:
        """Give a pending command its one outcome; False when it had one already (or was never submitted)."""
        c = self.cmds.pop(cid, None)
        if c is None:
            return False
        for index in (self.waiting, self.in_flight, self.accepted):
            index.pop(cid, None)
        self.counters[status] = self.counters.get(status, 0) + 1
        self.event(cid, status, **kw)
        self._on_finish(cid)
        self._finished[cid] = status
        while len(self._finished) > 8192:
            self._finished.popitem(last=False)
        return True

    def outcome_of(self, cid: int) -> EventStatus | None:
        """The outcome a finished command was given (None: pending, never submitted, or long forgotten)."""
        return self._finished.get(cid)

    def expire(self, floor: int) -> None:
        """Waiting commands whose position is at or below ``floor`` are reported late, never sent (queries excepted)."""
        budget = 1000  # a flood expires in slices, so one poll never holds up the heartbeat
        heap = self.by_position
        while heap and heap[0][0] <= floor and budget > 0:
            budget -= 1
            entry = heapq.heappop(heap)
            c = self.valid(entry)
            if c is None:
                continue
            if c.query:
                self.queries.append(entry[2])  # must reach the controller anyway (DONE or LATE tells)
                continue
            self.counters["late_local"] += 1
            self.finish(entry[2], "late", detail="position passed before it could be sent")

    def query_overdue(self, last_count: int, now_ns: int, overdue_ns: int, max_queries: int) -> None:
        """An accepted command past its end without a report: the report was lost; resend to get it again."""
        for cid in list(self.accepted):
            c = self.cmds[cid]
            if last_count <= last_count_of(c.command):
                continue
            if c.overdue_since_ns == 0:
                c.overdue_since_ns = now_ns
            elif now_ns - c.overdue_since_ns >= overdue_ns:
                if c.queries >= max_queries:
                    self.finish(cid, "rejected", detail="accepted, but no execution report despite queries")
                    continue
                c.queries += 1
                c.query = True
                self.set_state(cid, c, CommandState.WAITING)
                c.tries = 0
                c.overdue_since_ns = 0
                self.counters["report_queries"] += 1

    def finish_all(self, status: EventStatus, detail: str) -> list[QueuedCommand]:
        """Give every pending command the same outcome; returns them (their state before)."""
        out = []
        for cid in list(self.cmds):
            c = self.cmds[cid]
            if self.finish(cid, status, detail=detail):
                out.append(c)
        self.queries.clear()
        return out

    def requeue_all(self) -> None:
        """After a reconnect or a fault: everything not executed must be (re)sent."""
        for cid, c in self.cmds.items():
            if c.state == CommandState.ACCEPTED:
                # the controller had it: ask again even if its position has passed (DONE or LATE will tell)
                self.counters["resent_after_rearm"] += 1
                c.tries = 0
                c.query = True
            elif c.state == CommandState.IN_FLIGHT:  # sent, unanswered: it may have reached the controller
                c.query = True
            if c.state != CommandState.WAITING:
                self.set_state(cid, c, CommandState.WAITING)
            c.not_before_ns = 0
