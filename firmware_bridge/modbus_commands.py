"""The commands of a Modbus session and their slots (pure book-keeping, no I/O, no clock).

Which commands are still to be written (in submission order, and by first position
so the passed ones expire from the top), which slot each outstanding command holds,
which cancels are pending, and every command's one outcome as a ``LinkEvent``.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from firmware_bridge import registers as rmap
from firmware_bridge.link import EventStatus, LinkEvent
from firmware_bridge.messages import EPOCH_UNSET, AckResult, Fire, NakReason, Pick
from firmware_bridge.modbus_errors import EXC_DEVICE_BUSY, EXC_ILLEGAL_ADDRESS, EXC_ILLEGAL_VALUE, exception_name

#: how a refused command write is handled: busy slot (back off), refused for good, or written again later
WriteRefusal = Literal["busy", "rejected", "retry"]

COUNTERS = (
    "submitted",
    "sent",
    "retransmits",
    "accepted",
    "executed",
    "late",
    "late_local",
    "rejected",
    "cancelled",
    "lost",
    "nak_queue_full",
    "no_answer",
    "transactions",
    "timeouts",
    "exceptions",
    "faults",
    "watchdog_faults",
    "rearms",
    "reconnects",
    "heartbeats",
    "polls",
    "backoffs",
    "epoch_changes",
    "plc_restarts",
    "count_jumps",
    "wrong_epoch",
    "unknown_states",
    "bad_answers",
    "link_errors",
    "adopted",
)


@dataclass(slots=True)
class PendingCommand:
    """A command without an outcome yet.

    Attributes:
        command: what was submitted.
        accepted: its slot was seen QUEUED.
        tries: writes since the last reset (a busy slot or a lost slot resets it).
        not_before_ns: host time before which it is not (re)written (queue-full back-off).
        era: the host's count of epoch changes when it was taken: its positions belong to that epoch.
        boot_id: for a command adopted from an earlier link, the PLC's boot id it was written under (else None).
        query: adopted and not yet answered: written whatever its position, since the PLC may hold it.
        cancel_wanted: cancelled while a query: the cancel is written once the query has been answered.
    """

    command: Fire | Pick
    accepted: bool = False
    tries: int = 0
    not_before_ns: int = 0
    era: int = 0
    boot_id: int | None = None
    query: bool = False
    cancel_wanted: bool = False


def first_count(c: Fire | Pick) -> int:
    """The first position of a command (open count, or pick count)."""
    return c.open_count if isinstance(c, Fire) else c.pick_count


class CommandBook:
    """Commands, slots, cancels and outcomes of one Modbus session."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.cancels: dict[int, int] = {}  # command id -> tries
        self.last_count: int | None = None  # the encoder count of the last poll
        self.late_floor: int | None = None  # a position the PLC called late
        self.era = 0  # epoch changes seen (PLC restart, new epoch, count jump): commands of an older era are lost
        self._cmds: dict[int, PendingCommand] = {}
        self._to_write: OrderedDict[int, None] = OrderedDict()  # ids whose slot must be (re)written, in order
        self._by_position: list[tuple[int, int]] = []  # heap of (first count, id) of those
        self._written: dict[int, None] = {}  # ids written and not final: their slot states are polled
        self._to_read: OrderedDict[int, None] = OrderedDict()  # adopted ids whose slot is to be read first
        self._slot_owner: dict[int, int] = {}  # slot -> the outstanding id written there (never overwritten)
        self._finished: OrderedDict[int, EventStatus] = OrderedDict()
        self._events: list[LinkEvent] = []

    # ------------------------------------------------------------ queries

    def outstanding(self) -> int:
        return len(self._cmds)

    def has_unwritten(self) -> bool:
        return bool(self._to_write) or bool(self._to_read)

    def first_not_before_ns(self) -> int | None:
        """The back-off time of the next command that can be written (None: nothing to write, or every command
        waits for its slot to be freed, which a poll shows: never a wait that ends at once and changes nothing)."""
        c = self._writable()
        return c.not_before_ns if c is not None else None

    def take_events(self) -> list[LinkEvent]:
        ev, self._events = self._events, []
        return ev

    # ------------------------------------------------------------ inputs

    def add(self, command: Fire | Pick) -> None:
        cid = command.command_id
        if cid not in self._cmds and cid not in self._finished:
            self.counters["submitted"] += 1
            self._cmds[cid] = PendingCommand(command, era=self.era)
            self._mark_write(cid)

    def adopt(self, command: Fire | Pick, boot_id: int) -> None:
        """A command an earlier link wrote and left without an outcome: its slot is read first (``reconcile``)."""
        cid = command.command_id
        if cid in self._cmds or cid in self._finished:
            return
        self.counters["submitted"] += 1
        self.counters["adopted"] += 1
        self._cmds[cid] = PendingCommand(command, era=self.era, boot_id=boot_id, query=True)
        if command.epoch == EPOCH_UNSET:  # cannot be matched with what the PLC holds
            self.finish(cid, "lost", detail="left by a previous link without an epoch stamp")
            return
        self._to_read[cid] = None

    def next_to_read(self) -> PendingCommand | None:
        """The next adopted command whose slot is still to be read."""
        return self._cmds[next(iter(self._to_read))] if self._to_read else None

    def reconcile(self, c: PendingCommand, regs: Sequence[int]) -> None:
        """The slot of an adopted command, read whole (24 registers): the PLC's record of it.

        The slot holds it (same id, fields and epoch): its state is its outcome (EXECUTED with the counts, LATE,
        CANCELLED, REJECTED), or it is tracked on (QUEUED), or written again (DROPPED by a fault, unless its
        position has passed: then ``late``, it never ran). The slot holds another command: the PLC's history may
        still know it, so it is written again as a query (same id) once its slot is free.
        """
        cid = c.command.command_id
        self._to_read.pop(cid, None)
        if cid not in self._cmds:
            return
        held = rmap.decode_slot(regs[: rmap.SLOT_WRITE_SIZE]) == dataclasses.replace(c.command, epoch=EPOCH_UNSET)
        if held and regs[rmap.SLOT_EPOCH] == c.command.epoch:
            c.tries = 1
            res = rmap.SlotResult.from_regs(regs[rmap.SLOT_STATE :])
            if res.state == rmap.SlotState.REJECTED and res.reason == NakReason.NOT_ARMED:
                res = rmap.SlotResult(rmap.SlotState.DROPPED, 0, 0, 0)  # refused before this link armed: write again
            self.apply_slot(cid, res)
            return
        self._slot_owner.setdefault(rmap.slot_of(cid), cid)  # no new command goes into its slot before it
        self._mark_write(cid, front=True)

    def cancel_requested(self, command_id: int) -> None:
        c = self._cmds.get(command_id)
        if c is None:
            return
        if c.query:  # the PLC may hold it: cancelled once the query has been answered
            c.cancel_wanted = True
            return
        if command_id in self._to_write and c.tries == 0:  # never written, or the PLC has dropped it (or refused busy)
            self.finish(command_id, "cancelled", detail="cancelled before sending")
        else:
            self.cancels.setdefault(command_id, 0)

    # ------------------------------------------------------------ writing

    def _mark_write(self, cid: int, front: bool = False) -> None:
        c = self._cmds[cid]
        self._written.pop(cid, None)
        self._to_write[cid] = None
        if front:
            self._to_write.move_to_end(cid, last=False)
        heapq.heappush(self._by_position, (first_count(c.command), cid))

    def _floor(self) -> int:
        """Positions at or below this have certainly passed (last count seen, or a position refused late)."""
        known = [v for v in (self.last_count, self.late_floor) if v is not None]
        return max(known) if known else -(1 << 63)

    def expire_unsendable(self) -> None:
        """Commands never written (or refused for good) whose position has passed are reported late, never written.

        A command written once without a clear answer (a lost answer, an exception that may come after the write)
        may be held by the PLC: it is written again whatever its position, and the PLC's slot says what became of it.
        """
        heap = self._by_position
        budget = 1000  # a flood expires in slices, so one cycle never holds up the heartbeat
        floor = self._floor()
        while heap and heap[0][0] <= floor and budget > 0:
            budget -= 1
            _first, cid = heapq.heappop(heap)
            c = self._cmds.get(cid)
            if cid in self._to_write and c is not None and not c.query and c.tries == 0:  # else written: the PLC tells
                self.counters["late_local"] += 1
                self.finish(cid, "late", detail="position passed before it could be sent")
        if len(heap) > 4 * len(self._to_write) + 64:
            self._by_position = [(f, i) for f, i in heap if i in self._to_write]
            heapq.heapify(self._by_position)

    def next_to_write(self, now_ns: int) -> PendingCommand | None:
        """The first command to write whose slot is not held by another outstanding command, once its back-off is over."""
        c = self._writable()
        return c if c is not None and c.not_before_ns <= now_ns else None

    def _writable(self) -> PendingCommand | None:
        """The first command to write whose slot is not held by another outstanding command."""
        for cid in itertools.islice(self._to_write, 128):
            owner = self._slot_owner.get(rmap.slot_of(cid))
            if owner is None or owner == cid:
                return self._cmds[cid]
        return None

    def give_up(self, c: PendingCommand) -> None:
        """Too many writes without an answer: reported rejected, and cancelled in case the PLC has it."""
        cid = c.command.command_id
        self.counters["no_answer"] += 1
        self.finish(cid, "rejected", detail=f"no answer after {c.tries} writes")
        self.cancels[cid] = 0

    def refused_write(self, command_id: int, code: int) -> WriteRefusal:
        """A command write answered with an exception (PROTOCOL.md 6.6).

        6 is "queue full" (busy slot: back off, then write again); 2 and 3 refuse this command for good; any
        other code (the write may or may not have been applied) writes it again, same id, until ``max_retries``.
        """
        c = self._cmds.get(command_id)
        if code in (EXC_ILLEGAL_ADDRESS, EXC_ILLEGAL_VALUE):
            self.finish(command_id, "rejected", detail=f"PLC exception {code} ({exception_name(code)})")
            return "rejected"
        if code != EXC_DEVICE_BUSY:
            return "retry"
        self.counters["nak_queue_full"] += 1
        if c is not None:
            c.tries = 0
        return "busy"

    def not_before(self, command_id: int, t_ns: int) -> None:
        c = self._cmds.get(command_id)
        if c is not None:
            c.not_before_ns = t_ns

    # ------------------------------------------------------------ answers

    def apply_slot(self, command_id: int, res: rmap.SlotResult) -> bool:
        """What the PLC wrote in a command's slot; returns False when it says it is not armed."""
        entry = self._cmds.get(command_id)
        if entry is None:
            return True
        cancel = entry.query and entry.cancel_wanted  # cancelled while a query: now the PLC's answer is known
        entry.query = False
        armed = self._apply_state(entry, res)
        if cancel:
            self.cancel_requested(command_id)
        return armed

    def _apply_state(self, entry: PendingCommand, res: rmap.SlotResult) -> bool:
        cid = entry.command.command_id
        st = res.state
        if st == rmap.SlotState.QUEUED:
            self._to_write.pop(cid, None)
            self._written[cid] = None
            self._slot_owner[rmap.slot_of(cid)] = cid
            self._accepted(entry)
        elif st == rmap.SlotState.EXECUTED:
            self._accepted(entry)
            self.finish(cid, "executed", open_count=res.open_count, close_count=res.close_count)
        elif st == rmap.SlotState.LATE:
            self.finish(cid, "late", detail="PLC refused: LATE")
            # the belt only moves forward: whatever opens earlier is late too
            first = first_count(entry.command)
            self.late_floor = first if self.late_floor is None else max(self.late_floor, first)
        elif st == rmap.SlotState.CANCELLED:
            self.finish(cid, "cancelled", detail="cancelled by the PLC")
        elif st in (rmap.SlotState.REJECTED, rmap.SlotState.DROPPED) and res.reason == rmap.REASON_WRONG_EPOCH:
            self.counters["wrong_epoch"] += 1
            what = "refused" if st == rmap.SlotState.REJECTED else "dropped"
            self.finish(cid, "lost", detail=f"PLC {what} it: WRONG_EPOCH (its count was reset)")
        elif st == rmap.SlotState.REJECTED:
            if res.reason == NakReason.NOT_ARMED:
                entry.tries = 0
                self._mark_write(cid, front=True)
                return False
            self.finish(cid, "rejected", detail=f"PLC refused: {rmap.describe(NakReason, res.reason)}")
        elif st in (rmap.SlotState.EMPTY, rmap.SlotState.DROPPED):
            if entry.era != self.era:
                self.finish(cid, "lost", detail="dropped by the PLC in a past epoch")
            else:  # the PLC lost it (fault, DISARM): write it again
                entry.tries = 0
                self._mark_write(cid, front=True)
        else:  # a state this host does not know (a newer PLC): give it up, and cancel it in case it runs
            self.counters["unknown_states"] += 1
            self.finish(cid, "rejected", detail=f"PLC slot state {rmap.describe(rmap.SlotState, st)}")
            self.cancels[cid] = 0
        return True

    def new_era(self, mirror: Sequence[int] | None, detail: str, cancel: bool = False) -> list[int]:
        """The PLC restarted, or its count was reset or jumped: every command of the old epoch ends.

        Written commands whose slot (``mirror``: the slot states of the same poll, None when the PLC restarted
        and its slots mean nothing) shows a final state get that outcome; those shown EXECUTED are returned,
        so their counts are read (then :meth:`lose_era` finishes what could not be confirmed); all others
        are finished ``lost``, never written again. ``cancel``: the PLC may still hold them (its epoch did not
        change although its count jumped): the written ones are cancelled too.
        """
        self.era += 1
        self.last_count = None
        self.late_floor = None
        to_read: list[int] = []
        for cid, c in list(self._cmds.items()):
            written = c.accepted or c.tries > 0 or c.query
            st = mirror[rmap.slot_of(cid)] & 0xFF if mirror is not None and written else None
            if st == rmap.SlotState.EXECUTED:
                to_read.append(cid)
            elif st in (rmap.SlotState.LATE, rmap.SlotState.REJECTED, rmap.SlotState.CANCELLED):
                assert mirror is not None
                self.apply_slot(cid, rmap.SlotResult(st, mirror[rmap.slot_of(cid)] >> 8, 0, 0))
            else:
                self.finish(cid, "lost", detail=detail)
                if cancel and written:
                    self.cancels[cid] = 0
        return to_read

    def lose_era(self, detail: str) -> None:
        """Finish as ``lost`` every command of a past era still without an outcome."""
        for cid, c in list(self._cmds.items()):
            if c.era != self.era:
                self.finish(cid, "lost", detail=detail)

    def _accepted(self, entry: PendingCommand) -> None:
        if not entry.accepted:
            entry.accepted = True
            self.counters["accepted"] += 1
            self._events.append(LinkEvent(entry.command.command_id, "accepted"))

    def apply_mirror(self, mirror: Sequence[int]) -> tuple[list[int], bool]:
        """The slot state mirror of a poll: final states applied; returns the executed ids (their counts are read
        next) and False when a slot says the PLC is not armed."""
        executed: list[int] = []
        armed = True
        for cid in list(self._written):
            st = mirror[rmap.slot_of(cid)] & 0xFF
            if st == rmap.SlotState.EXECUTED:
                executed.append(cid)
            elif st != rmap.SlotState.QUEUED:
                armed &= self.apply_slot(cid, rmap.SlotResult(st, mirror[rmap.slot_of(cid)] >> 8, 0, 0))
        return executed, armed

    def next_cancel(self, max_retries: int) -> int | None:
        """The next cancel to write (None: none left); each is tried ``max_retries + 1`` times at most."""
        while self.cancels:
            cid, tries = next(iter(self.cancels.items()))
            if tries > max_retries:
                del self.cancels[cid]
                continue
            self.cancels[cid] = tries + 1
            return cid
        return None

    def cancel_answered(self, command_id: int, result: int) -> None:
        self.cancels.pop(command_id, None)
        if result == AckResult.CANCELLED:
            self.finish(command_id, "cancelled", detail="cancelled by the PLC")

    # ------------------------------------------------------------ outcomes

    def finish_all(self, status: EventStatus, detail: str) -> None:
        for cid in list(self._cmds):
            self.finish(cid, status, detail=detail)

    def finish(self, cid: int, status: EventStatus, **kw: object) -> None:
        """The one outcome of a command (later ones for the same id are ignored)."""
        self._to_write.pop(cid, None)
        self._to_read.pop(cid, None)
        self._written.pop(cid, None)
        if self._slot_owner.get(rmap.slot_of(cid)) == cid:
            del self._slot_owner[rmap.slot_of(cid)]
        if self._cmds.pop(cid, None) is None:
            return
        self.cancels.pop(cid, None)
        self.counters[status] = self.counters.get(status, 0) + 1
        self._events.append(LinkEvent(cid, status, **kw))  # type: ignore[arg-type]
        self._finished[cid] = status
        while len(self._finished) > 8192:
            self._finished.popitem(last=False)
