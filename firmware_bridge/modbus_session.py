"""Host side of the PLC register protocol (PROTOCOL.md section 6.6) as a sans-IO state machine.

The session never touches a socket or a clock. Every call takes the host's
monotonic time; :meth:`ModbusSession.next_action` says what to do next (one
register transaction, a connection to open, or nothing until a time), and the
transport reports the outcome with :meth:`~ModbusSession.answered`,
:meth:`~ModbusSession.refused` (a Modbus exception answer) or
:meth:`~ModbusSession.no_answer` (timeout, connection lost). The thread around it
(``modbus_link.ModbusLink``) only performs transactions.

One cycle, in order of urgency:

1. connect (the transport's short timeout; exponential backoff while the PLC is away);
2. ARM when the PLC is not armed for this session (after connect, restart or a watchdog fault);
3. the heartbeat write every ``heartbeat_ms``;
4. command writes: one FC23 per command writes its slot and reads back the slot's
   state in the same transaction (accepted / late / refused); a busy slot
   (exception 6) means the PLC's queue is full: back off and retry;
5. cancels;
6. the poll: one read of registers 0..103 (header, control, all slot states)
   every ``poll_ms``; executed slots are then read for their actual counts.

A transaction without an answer drops the connection; commands are rewritten under
the same id after reconnecting (slots are addressed by id, so a repeated write is
harmless), never once their position is known to have passed.

Protocol version 2 (PROTOCOL.md 4.6, 6.6): every poll carries the PLC's boot id and
encoder epoch. A new boot id (restart), a new epoch (count re-zeroed) or a count that
moves backwards or faster than a belt can ends every command of the old epoch: those
whose slot shows an outcome get it, all others are finished ``lost`` and never
written again; the odometer sync restarts and commands taken from then on are
written in the new epoch. A PLC of another map version stops the session with a clear
error. Every Modbus exception answer is counted and survived; :attr:`ModbusSession.down_reason`
says why the link is not up (the service shows it as ``degraded``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Generator, Sequence

from firmware_bridge import registers as rmap
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import Fire, Pick, Status
from firmware_bridge.modbus_actions import (
    MS,
    Action,
    Connect,
    ModbusLinkConfig,
    Transaction,
    Wait,
    WriteRegisters,
)
from firmware_bridge.modbus_commands import CommandBook
from firmware_bridge.modbus_epochs import EpochWatch, LinkHealthState
from firmware_bridge.modbus_steps import Answer, DroppedError, Refusal, RefusedError, Result, SessionSteps, StopError
from firmware_bridge.ratelimit import BurstLog
from firmware_bridge.sync import SyncEstimator

log = logging.getLogger(__name__)


_Cycle = Generator[Transaction, Result, int]


class ModbusSession(SessionSteps):
    """The host protocol machine for one PLC.

    Args:
        config: timing.
        session_id: identifies this host run to the PLC (a new id makes it forget old command ids).
        arm: False for a monitor (``sorter hw status``): never ARM, never write the heartbeat.
        where: the PLC's address, for log lines.
    """

    def __init__(self, config: ModbusLinkConfig, session_id: int, arm: bool = True, where: str = "PLC") -> None:
        self.cfg = config
        self.session_id = session_id & 0xFFFFFFFF
        self.arm_enabled = arm
        self.where = where
        self.sync = SyncEstimator()
        self.book = CommandBook()
        self.counters = self.book.counters
        self.connected = False
        self.armed = False
        self.status: Status | None = None
        self.header: rmap.Header | None = None
        self.disarm_requested = False
        self._inbox: deque[Fire | Pick | int] = deque()  # submissions and cancels, taken in slices per cycle
        self._now = 0
        self._cycle: _Cycle | None = None
        self._next: Action | None = None  # the action decided when the last answer came in
        self._awaiting: Transaction | None = None
        self._reconnect_ns = int(config.reconnect_min_ms * MS)
        self._next_connect_ns = 0
        self._hb = 0
        self._next_hb_ns = 0
        self._next_poll_ns = 0
        self._paused_until_ns = 0
        self._backoff_ns = 0
        self._burst = BurstLog(log, f"Modbus link to {where} failing")
        self._exc_burst = BurstLog(log, f"PLC at {where} answered with Modbus exceptions")
        self._exc_backoff_ns = 0
        self.epochs = EpochWatch(config.max_counts_per_s, config.backward_tolerance_counts)
        self.health = LinkHealthState(config.fault_hold_ms)

    @property
    def boot_id(self) -> int | None:
        """The PLC's boot id, from the last poll."""
        return self.epochs.boot_id

    @property
    def epoch(self) -> int | None:
        """The PLC's encoder epoch, from the last poll: written with every command."""
        return self.epochs.epoch

    @property
    def error(self) -> str | None:
        """Set when the session has stopped for good (a PLC of another map version)."""
        return self.health.error

    @property
    def down_reason(self) -> str | None:
        """Why the link is down; None when the last cycle went through without a fault."""
        return self.health.down_reason

    # ----------------------------------------------------------------- inputs

    def submit(self, command: Fire | Pick, now_ns: int) -> None:
        """Queue a command (a known id is ignored)."""
        self._inbox.append(command)
        self._input(now_ns)

    def cancel(self, command_id: int, now_ns: int) -> None:
        """Cancel a command: locally if not written yet, else by a cancel write."""
        self._inbox.append(command_id)
        self._input(now_ns)

    def adopt(self, command: Fire | Pick, boot_id: int, now_ns: int) -> None:
        """A command an earlier link of this host run wrote and left without an outcome: ask the PLC.

        ``command`` is as it was written (its epoch stamped), ``boot_id`` the PLC's boot id then. It is written
        again under its id before anything new, whatever its position (PROTOCOL.md 6.6, "Link restarted"),
        unless the PLC's boot id is no longer its own (then it is ``lost``); the slot read back in the same
        transaction tells: EXECUTED with the counts (it ran), QUEUED (still queued, or queued anew: tracked
        on), LATE (it never ran and its position has passed), CANCELLED, or REJECTED with WRONG_EPOCH (its
        epoch ended: ``lost``). Call before submitting anything new.
        """
        self.book.adopt(command, boot_id)
        self._input(now_ns)

    def poll_requested(self) -> bool:
        """True when a poll is due at the next chance."""
        return self._next_poll_ns == 0

    def poll_now(self, now_ns: int) -> None:
        """Poll at the next chance instead of at the poll period (fresh status, reports)."""
        self._next_poll_ns = 0
        self._input(now_ns)

    def request_disarm(self, now_ns: int) -> None:
        """Write DISARM at the next chance (closing the link)."""
        self.disarm_requested = True
        self._input(now_ns)

    def _input(self, now_ns: int) -> None:
        """A new input ends the wait: a new cycle (or a reconnection attempt) at once."""
        if isinstance(self._next, Wait):
            self._next = None
        if not self.connected:
            self._next_connect_ns = min(self._next_connect_ns, now_ns)

    def connect_result(self, ok: bool, now_ns: int) -> None:
        """The outcome of a :class:`Connect`."""
        self._now = now_ns
        if ok:
            self.connected = True
            self.armed = False
            self._reconnect_ns = int(self.cfg.reconnect_min_ms * MS)
            log.info("Modbus link to %s connected", self.where)
            return
        self._absorb_inbox()
        self.book.expire_unsendable()
        self._next_connect_ns = now_ns + self._reconnect_ns
        self._reconnect_ns = min(self._reconnect_ns * 2, int(self.cfg.reconnect_max_ms * MS))

    def answered(self, registers: Sequence[int], t_sent_ns: int, now_ns: int) -> None:
        """The pending transaction succeeded; ``registers`` are the ones read (empty for a write)."""
        self._resume(Answer(tuple(registers), t_sent_ns, now_ns), now_ns)

    def refused(self, code: int, now_ns: int) -> None:
        """The device answered the pending transaction with Modbus exception ``code`` (counted and survived)."""
        self._resume(Refusal(code), now_ns)

    def no_answer(self, reason: str, now_ns: int) -> None:
        """The pending transaction got no (valid) answer; the transport has closed the connection."""
        self._now = now_ns
        self._awaiting = None
        self._next = None
        if self._cycle is not None:
            self._cycle.close()
            self._cycle = None
        self._connection_lost(reason)

    def reset(self, reason: str, now_ns: int) -> None:
        """Something outside the protocol went wrong (the link thread caught an error): drop the connection, start over.

        Accepted commands keep their slots and are reconciled from the next poll, as after any lost connection.
        """
        self.counters["link_errors"] += 1
        if self.connected or self._awaiting is not None or self._cycle is not None:
            self.no_answer(reason, now_ns)
        self._fault(reason)

    # ---------------------------------------------------------------- outputs

    def next_action(self, now_ns: int) -> Action:
        """What to do now. Every transaction returned must be answered before the next call."""
        if self._awaiting is not None:
            raise RuntimeError(f"the transaction {self._awaiting} has not been answered")
        self._now = now_ns
        if self.error is not None:  # stopped: whatever comes in is refused with the reason
            self._absorb_inbox()
            self.book.finish_all("rejected", self.error)
            self.book.cancels.clear()
            return Wait(now_ns + 1_000 * MS)
        if self._next is not None:
            action, self._next = self._next, None
            if not isinstance(action, Wait) or action.until_ns > now_ns:
                return self._pending(action)
        if not self.connected:
            return Connect() if now_ns >= self._next_connect_ns else Wait(self._next_connect_ns)
        self._cycle = self._run_cycle()
        return self._pending(self._step(None))

    def take_events(self) -> list[LinkEvent]:
        """Return and clear the events."""
        return self.book.take_events()

    def busy(self) -> bool:
        """True while submissions or cancels are not taken yet, or commands are still to be written."""
        return bool(self._inbox) or self.book.has_unwritten()

    def ready(self) -> bool:
        """Connected, and armed unless this is a monitor."""
        return self.error is None and self.connected and (self.armed or not self.arm_enabled)

    def up(self, now_ns: int) -> bool:
        """Ready, the last cycle went through without a fault (see :attr:`down_reason`), and the last fault is at
        least ``fault_hold_ms`` old (a fault over in a few milliseconds is still seen by a once-a-second check)."""
        return self.health.up(now_ns, self.ready())

    def health_reason(self, now_ns: int) -> str:
        """Why the link is not up ("" when it is)."""
        return self.health.reason(now_ns, self.ready(), self.connected)

    def outstanding(self) -> int:
        """Commands not yet final."""
        return self.book.outstanding()

    # --------------------------------------------------------------- driving

    def _pending(self, action: Action) -> Action:
        if not isinstance(action, Wait | Connect):
            self._awaiting = action
        return action

    def _resume(self, result: Result, now_ns: int) -> None:
        if self._awaiting is None or self._cycle is None:
            raise RuntimeError("no transaction is waiting for an answer")
        self._now = now_ns
        self._awaiting = None
        self._next = self._step(result)

    def _step(self, result: Result | None) -> Action:
        assert self._cycle is not None
        try:
            return self._cycle.send(result) if result is not None else next(self._cycle)
        except StopIteration as done:
            self._cycle = None
            return Wait(int(done.value))
        except DroppedError as e:
            self._cycle = None
            self._connection_lost(str(e))
            return Connect()
        except RefusedError:
            self._cycle = None
            return Wait(self._now + self._exception_pause())
        except StopError as e:
            self._cycle = None
            self._stop(str(e))
            return Wait(self._now)
        except BaseException:
            self._cycle = None
            raise

    def _stop(self, message: str) -> None:
        self.health.stop(message, self._now)
        log.error("Modbus link to %s stopped: %s", self.where, message)
        self.book.finish_all("rejected", message)

    def _connection_lost(self, reason: str) -> None:
        self.counters["timeouts"] += 1
        self._fault(f"no answer from the PLC: {reason}")
        self._burst.event(self._now, reason)
        # accepted commands are re-verified by the next poll of the slot states (the PLC may
        # have executed, dropped or, after a restart, forgotten them)
        self.connected = False
        self.armed = False
        self.counters["reconnects"] += 1
        self._next_connect_ns = self._now

    # ----------------------------------------------------------------- cycle

    def _absorb_inbox(self) -> None:
        """Take queued submissions and cancels, in slices so heartbeats keep their period."""
        for _ in range(min(len(self._inbox), 256)):
            item = self._inbox.popleft()
            if isinstance(item, int):
                self.book.cancel_requested(item)
            else:
                self.book.add(item)

    def _run_cycle(self) -> _Cycle:
        self._absorb_inbox()
        now = cycle_start_ns = self._now
        if self.disarm_requested:
            yield from self._tx(WriteRegisters(rmap.REG_CONTROL, (rmap.CONTROL_DISARM, *rmap.u32_to_regs(self.session_id))))
            self.disarm_requested = False
            self.armed = False
            return self._now + 50 * MS
        if not self.armed and self.arm_enabled:
            yield from self._poll(now)  # learn session / fault state first
            if not self.armed:
                yield from self._tx(WriteRegisters(rmap.REG_CONTROL, (rmap.CONTROL_ARM, *rmap.u32_to_regs(self.session_id))))
                yield from self._heartbeat(now)
                self.armed = True
        if self.arm_enabled and now >= self._next_hb_ns:
            yield from self._heartbeat(now)
        if self.armed:
            yield from self._send_commands()
        yield from self._send_cancels()
        now = self._now
        if now >= self._next_poll_ns:
            yield from self._poll(now)
        ready = self.ready() and self.epochs.known
        cleared = self.health.cycle_done(cycle_start_ns, ready, self.sync.speed_counts_per_s() is not None)
        if cleared is not None:
            log.info("Modbus link to %s up again (was: %s)", self.where, cleared)
        self._exc_backoff_ns = 0
        return self._wait_until()

    def _wait_until(self) -> int:
        now = self._now
        t = min(self._next_hb_ns, self._next_poll_ns) if self.arm_enabled else self._next_poll_ns
        if self.book.cancels or self.disarm_requested or self._inbox or (self.arm_enabled and not self.armed):
            t = now  # (not armed: the PLC restarted or tripped; re-armed at once)
        first = self.book.first_not_before_ns()
        if first is not None and self.armed:
            t = min(t, max(self._paused_until_ns, first))
        return max(t, now)
