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
from dataclasses import dataclass

from firmware_bridge import registers as rmap
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import FaultCode, Fire, Pick, Status, StatusFlags
from firmware_bridge.modbus_actions import (
    MS,
    Action,
    Connect,
    ModbusLinkConfig,
    ReadRegisters,
    Transaction,
    Wait,
    WriteReadRegisters,
    WriteRegister,
    WriteRegisters,
)
from firmware_bridge.modbus_commands import CommandBook
from firmware_bridge.modbus_epochs import EpochWatch, LinkHealthState
from firmware_bridge.modbus_errors import EXC_DEVICE_BUSY, exception_name
from firmware_bridge.ratelimit import BurstLog
from firmware_bridge.sync import SyncEstimator

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Answer:
    registers: tuple[int, ...]
    t_sent_ns: int
    t_done_ns: int


@dataclass(frozen=True, slots=True)
class _Refusal:
    code: int


class _DroppedError(Exception):
    """The device cannot be talked to (e.g. another register map): handled as a lost connection."""


class _RefusedError(Exception):
    """A Modbus exception answer to a poll, heartbeat, control or cancel: the cycle ends, retried after a pause."""


class _StopError(Exception):
    """The PLC cannot be served by this host (another map version): the session stops with this message."""


_Result = _Answer | _Refusal
_Cycle = Generator[Transaction, _Result, int]


class ModbusSession:
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
        self._resume(_Answer(tuple(registers), t_sent_ns, now_ns), now_ns)

    def refused(self, code: int, now_ns: int) -> None:
        """The device answered the pending transaction with Modbus exception ``code`` (counted and survived)."""
        self._resume(_Refusal(code), now_ns)

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

    def _fault(self, reason: str) -> None:
        self.health.fault(reason, self._now)

    def outstanding(self) -> int:
        """Commands not yet final."""
        return self.book.outstanding()

    # --------------------------------------------------------------- driving

    def _pending(self, action: Action) -> Action:
        if not isinstance(action, Wait | Connect):
            self._awaiting = action
        return action

    def _resume(self, result: _Result, now_ns: int) -> None:
        if self._awaiting is None or self._cycle is None:
            raise RuntimeError("no transaction is waiting for an answer")
        self._now = now_ns
        self._awaiting = None
        self._next = self._step(result)

    def _step(self, result: _Result | None) -> Action:
        assert self._cycle is not None
        try:
            return self._cycle.send(result) if result is not None else next(self._cycle)
        except StopIteration as done:
            self._cycle = None
            return Wait(int(done.value))
        except _DroppedError as e:
            self._cycle = None
            self._connection_lost(str(e))
            return Connect()
        except _RefusedError:
            self._cycle = None
            return Wait(self._now + self._exception_pause())
        except _StopError as e:
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

    def _exception_pause(self) -> int:
        """Pause after an exception answer: [2 ms] doubling up to the heartbeat period (so the watchdog is fed as
        soon as the PLC accepts again), reset by a cycle without one."""
        cap_ns = int(min(self.cfg.backoff_max_ms, self.cfg.heartbeat_ms) * MS)
        self._exc_backoff_ns = min(max(self._exc_backoff_ns * 2, int(self.cfg.backoff_min_ms * MS)), cap_ns)
        return self._exc_backoff_ns

    def _exception(self, tx: Transaction, code: int) -> str:
        """Count and log (once per burst) a Modbus exception answer; returns it in words."""
        self.counters["exceptions"] += 1
        key = f"exception_{code}"
        self.counters[key] = self.counters.get(key, 0) + 1
        what = f"PLC answered exception {code} ({exception_name(code)}) to function {tx.function_code}"
        self._exc_burst.event(self._now, what)
        return what

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

    def _tx(self, tx: Transaction) -> Generator[Transaction, _Result, _Answer]:
        """Perform one transaction; an exception answer ends the cycle (retried after a pause, link down meanwhile)."""
        result = yield tx
        self.counters["transactions"] += 1
        if isinstance(result, _Refusal):
            self._fault(self._exception(tx, result.code))
            raise _RefusedError(tx)
        return result

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

    def _heartbeat(self, now: int) -> Generator[Transaction, _Result, None]:
        if not self.arm_enabled:
            self._next_hb_ns = now + int(self.cfg.heartbeat_ms * MS)
            return
        self._hb = (self._hb + 1) & 0xFFFF
        yield from self._tx(WriteRegister(rmap.REG_HEARTBEAT, self._hb))
        self.counters["heartbeats"] += 1
        self._next_hb_ns = now + int(self.cfg.heartbeat_ms * MS)

    def _send_commands(self) -> Generator[Transaction, _Result, None]:
        while True:
            now = self._now
            if self.arm_enabled and now >= self._next_hb_ns:
                yield from self._heartbeat(now)
            if now >= self._next_poll_ns:
                return  # poll between writes: fresh encoder count, slot states, executions
            self.book.expire_unsendable()
            if now < self._paused_until_ns:
                return
            todo = self.book.next_to_write(now)
            if todo is None:
                return
            if todo.tries > self.cfg.max_retries:
                self.book.give_up(todo)
                continue
            if todo.tries > 0 and not todo.accepted:
                self.counters["retransmits"] += 1
            todo.tries += 1
            yield from self._write_command(todo.command)

    def _write_command(self, cmd: Fire | Pick) -> Generator[Transaction, _Result, None]:
        base = rmap.slot_address(rmap.slot_of(cmd.command_id))
        assert self.epoch is not None  # armed only after a poll
        self.counters["sent"] += 1
        tx = WriteReadRegisters(base, tuple(rmap.encode_slot(cmd, self.epoch)), base + rmap.SLOT_STATE, rmap.SLOT_READ_SIZE)
        result = yield tx
        self.counters["transactions"] += 1
        if isinstance(result, _Refusal):
            if result.code != EXC_DEVICE_BUSY:
                self._fault(self._exception(tx, result.code))
            else:
                self.counters["exceptions"] += 1
            verdict = self.book.refused_write(cmd.command_id, result.code)
            now = self._now
            if verdict == "busy":
                self._backoff_ns = min(
                    max(self._backoff_ns * 2, int(self.cfg.backoff_min_ms * MS)), int(self.cfg.backoff_max_ms * MS)
                )
                self.book.not_before(cmd.command_id, now + self._backoff_ns)
                self._paused_until_ns = now + self._backoff_ns
                self.counters["backoffs"] += 1
            elif verdict == "retry":  # the PLC is in trouble: written again after a pause, down meanwhile
                pause = self._exception_pause()
                self.book.not_before(cmd.command_id, now + pause)
                self._paused_until_ns = now + pause
            return
        self._backoff_ns = 0
        res = rmap.SlotResult.from_regs(result.registers)
        self.armed &= self.book.apply_slot(cmd.command_id, res)
        if res.reason == rmap.REASON_WRONG_EPOCH:
            self._next_poll_ns = 0  # the PLC's epoch changed since the last poll: learn the new one now

    def _send_cancels(self) -> Generator[Transaction, _Result, None]:
        while True:
            cid = self.book.next_cancel(self.cfg.max_retries)
            if cid is None:
                return
            answer = yield from self._tx(
                WriteReadRegisters(rmap.REG_CANCEL_ID, tuple(rmap.u32_to_regs(cid)), rmap.REG_CANCEL_RESULT, 1)
            )
            self.book.cancel_answered(cid, answer.registers[0])

    def _poll(self, now: int) -> Generator[Transaction, _Result, None]:
        answer = yield from self._tx(ReadRegisters(0, rmap.POLL_SIZE))
        regs = answer.registers
        if len(regs) < rmap.POLL_SIZE:
            self.counters["bad_answers"] += 1
            raise _DroppedError(f"the poll returned {len(regs)} registers, not {rmap.POLL_SIZE}")
        h = rmap.Header.from_regs(regs)
        if h.magic != rmap.MAGIC:
            raise _DroppedError(f"device at {self.where} does not implement this register map (register 0 = 0x{h.magic:04x})")
        if h.version != rmap.MAP_VERSION:
            raise _StopError(
                f"the PLC at {self.where} speaks register map version {h.version}; this host needs version "
                f"{rmap.MAP_VERSION} (epochs, PROTOCOL.md section 9): update the PLC program"
            )
        mirror = regs[rmap.STATE_BASE : rmap.STATE_BASE + rmap.SLOT_COUNT]
        change = self.epochs.observe(h.boot_id, h.epoch, h.encoder_count, answer.t_sent_ns, answer.t_done_ns)
        to_read: list[int] = []
        if change is not None:
            self.counters[{"restart": "plc_restarts", "epoch": "epoch_changes", "jump": "count_jumps"}[change.kind]] += 1
            to_read = self.book.new_era(mirror if change.same_plc else None, change.why, cancel=change.kind == "jump")
            self.sync = SyncEstimator(self.sync.window_ns, self.sync.min_baseline_ns)
            self._fault(change.why)  # down until the sync has a speed again: positions cannot be computed before
            self.health.resync = True
        self.sync.add(answer.t_sent_ns, answer.t_done_ns, h.device_time_us, h.encoder_count)
        self.counters["polls"] += 1
        self._on_header(h)
        executed, armed = self.book.apply_mirror(mirror)
        self.armed &= armed
        outstanding = self.book.outstanding() > 0
        for cid in dict.fromkeys(executed + to_read):
            base = rmap.slot_address(rmap.slot_of(cid))
            full = yield from self._tx(ReadRegisters(base, rmap.SLOT_SIZE))
            cmd = rmap.decode_slot(full.registers[: rmap.SLOT_WRITE_SIZE])
            if cmd is not None and cmd.command_id == cid:
                self.armed &= self.book.apply_slot(cid, rmap.SlotResult.from_regs(full.registers[rmap.SLOT_STATE :]))
        if change is not None:
            self.book.lose_era(change.why)
        period = self.cfg.poll_ms if outstanding else self.cfg.idle_poll_ms
        self._next_poll_ns = now + int(period * MS)

    def _on_header(self, h: rmap.Header) -> None:
        """A fresh header: status, encoder count, and whether the PLC is still armed for this session."""
        self.header = h
        self.book.last_count = h.encoder_count
        self.status = h.to_status()
        armed_here = bool(h.flags & StatusFlags.ARMED) and h.session_id == self.session_id
        if self.armed and not armed_here:
            self.counters["rearms"] += 1
            if h.fault_code == FaultCode.WATCHDOG:
                self.counters["watchdog_faults"] += 1
                log.warning("PLC watchdog tripped (valves closed); re-arming and rewriting outstanding commands")
            elif h.fault_code != FaultCode.NONE:
                self.counters["faults"] += 1
                log.error("PLC fault %d: valves closed; commands refused", h.fault_code)
                self.book.finish_all("rejected", f"PLC fault {h.fault_code}")
            else:
                log.warning("PLC is not armed for this session (restarted?); re-arming")
        self.armed = armed_here
