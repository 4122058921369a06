"""The transactions of one Modbus session cycle (PROTOCOL.md 6.6): heartbeat, command writes, cancels, the poll.

Each step is a generator that yields the register transactions it needs and receives
their results; :class:`firmware_bridge.modbus_session.ModbusSession` drives them (and
owns the state declared here). Pure: no I/O, no clock.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass

from firmware_bridge import registers as rmap
from firmware_bridge.messages import FaultCode, Fire, Pick, Status, StatusFlags
from firmware_bridge.modbus_actions import (
    MS,
    ModbusLinkConfig,
    ReadRegisters,
    Transaction,
    WriteReadRegisters,
    WriteRegister,
)
from firmware_bridge.modbus_commands import CommandBook
from firmware_bridge.modbus_epochs import EpochWatch, LinkHealthState
from firmware_bridge.modbus_errors import EXC_DEVICE_BUSY, exception_name
from firmware_bridge.ratelimit import BurstLog
from firmware_bridge.sync import SyncEstimator

log = logging.getLogger("firmware_bridge.modbus_session")


@dataclass(frozen=True, slots=True)
class Answer:
    """The registers read by a transaction, and when it was sent and answered (host time)."""

    registers: tuple[int, ...]
    t_sent_ns: int
    t_done_ns: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """A Modbus exception answer."""

    code: int


class DroppedError(Exception):
    """The device cannot be talked to (e.g. another register map): handled as a lost connection."""


class RefusedError(Exception):
    """A Modbus exception answer to a poll, heartbeat, control or cancel: the cycle ends, retried after a pause."""


class StopError(Exception):
    """The PLC cannot be served by this host (another map version): the session stops with this message."""


Result = Answer | Refusal


class SessionSteps:
    """The steps of a cycle, over the session's state (set by ``ModbusSession.__init__``)."""

    cfg: ModbusLinkConfig
    session_id: int
    arm_enabled: bool
    where: str
    sync: SyncEstimator
    book: CommandBook
    counters: dict[str, int]
    armed: bool
    status: Status | None
    header: rmap.Header | None
    epochs: EpochWatch
    health: LinkHealthState
    _now: int
    _hb: int
    _next_hb_ns: int
    _next_poll_ns: int
    _paused_until_ns: int
    _backoff_ns: int
    _exc_backoff_ns: int
    _exc_burst: BurstLog

    def _fault(self, reason: str) -> None:
        self.health.fault(reason, self._now)

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

    def _tx(self, tx: Transaction) -> Generator[Transaction, Result, Answer]:
        """Perform one transaction; an exception answer ends the cycle (retried after a pause, link down meanwhile)."""
        result = yield tx
        self.counters["transactions"] += 1
        if isinstance(result, Refusal):
            self._fault(self._exception(tx, result.code))
            raise RefusedError(tx)
        return result

    def _heartbeat(self, now: int) -> Generator[Transaction, Result, None]:
        if not self.arm_enabled:
            self._next_hb_ns = now + int(self.cfg.heartbeat_ms * MS)
            return
        self._hb = (self._hb + 1) & 0xFFFF
        yield from self._tx(WriteRegister(rmap.REG_HEARTBEAT, self._hb))
        self.counters["heartbeats"] += 1
        self._next_hb_ns = now + int(self.cfg.heartbeat_ms * MS)

    def _reconcile(self) -> Generator[Transaction, Result, None]:
        """Read the slot of every adopted command before anything is written (PROTOCOL.md 6.6, "Link restarted")."""
        while (c := self.book.next_to_read()) is not None:
            if self.arm_enabled and self._now >= self._next_hb_ns:
                yield from self._heartbeat(self._now)
            cid = c.command.command_id
            if c.boot_id != self.epochs.boot_id:
                self.book.finish(cid, "lost", detail=f"PLC restarted since it was written (boot id 0x{c.boot_id or 0:08x})")
                continue
            answer = yield from self._tx(ReadRegisters(rmap.slot_address(rmap.slot_of(cid)), rmap.SLOT_SIZE))
            self.book.reconcile(c, answer.registers)

    def _send_commands(self) -> Generator[Transaction, Result, None]:
        yield from self._reconcile()
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

    def _write_command(self, cmd: Fire | Pick) -> Generator[Transaction, Result, None]:
        base = rmap.slot_address(rmap.slot_of(cmd.command_id))
        epoch = cmd.epoch or self.epochs.epoch  # a stamped command keeps its epoch: the PLC refuses it if it ended
        assert epoch is not None  # armed only after a poll
        self.counters["sent"] += 1
        tx = WriteReadRegisters(base, tuple(rmap.encode_slot(cmd, epoch)), base + rmap.SLOT_STATE, rmap.SLOT_READ_SIZE)
        result = yield tx
        self.counters["transactions"] += 1
        if isinstance(result, Refusal):
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

    def _send_cancels(self) -> Generator[Transaction, Result, None]:
        while True:
            cid = self.book.next_cancel(self.cfg.max_retries)
            if cid is None:
                return
            answer = yield from self._tx(
                WriteReadRegisters(rmap.REG_CANCEL_ID, tuple(rmap.u32_to_regs(cid)), rmap.REG_CANCEL_RESULT, 1)
            )
            self.book.cancel_answered(cid, answer.registers[0])

    def _poll(self, now: int) -> Generator[Transaction, Result, None]:
        answer = yield from self._tx(ReadRegisters(0, rmap.POLL_SIZE))
        regs = answer.registers
        if len(regs) < rmap.POLL_SIZE:
            self.counters["bad_answers"] += 1
            raise DroppedError(f"the poll returned {len(regs)} registers, not {rmap.POLL_SIZE}")
        h = rmap.Header.from_regs(regs)
        if h.magic != rmap.MAGIC:
            raise DroppedError(f"device at {self.where} does not implement this register map (register 0 = 0x{h.magic:04x})")
        if h.version != rmap.MAP_VERSION:
            raise StopError(
                f"the PLC at {self.where} speaks register map version {h.version}; this host needs version "
                f"{rmap.MAP_VERSION} (epochs, PROTOCOL.md section 9): update the PLC program"
            )
        mirror = regs[rmap.STATE_BASE : rmap.STATE_BASE + rmap.SLOT_COUNT]
        change = self.epochs.observe(h.boot_id, h.epoch, h.encoder_count, answer.t_sent_ns, answer.t_done_ns, h.device_time_us)
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
                fault = rmap.describe(FaultCode, h.fault_code)
                log.error("PLC fault %s: valves closed; commands refused", fault)
                self.book.finish_all("rejected", f"PLC fault {fault}")
            else:
                log.warning("PLC is not armed for this session (restarted?); re-arming")
        self.armed = armed_here
