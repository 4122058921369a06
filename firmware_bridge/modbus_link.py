"""Modbus link to a PLC (TCP or RTU) using the register map of PROTOCOL.md section 6.

One thread owns the connection and runs, in order of urgency:

1. connect (short timeout, exponential backoff while the PLC is away);
2. ARM when the PLC is not armed for this session (after connect, restart or a watchdog fault);
3. the heartbeat write every ``heartbeat_ms``;
4. command writes: one FC23 per command writes its slot and reads back the
   slot's state in the same transaction (accepted / late / refused); a busy
   slot (exception 6) means the PLC's queue is full: back off and retry;
5. cancels;
6. the poll: one read of registers 0..103 (header, control, all slot states)
   every ``poll_ms``; executed slots are then read for their actual counts.

Every transaction has a short timeout; a timeout drops the connection and is
retried under the same command id (slots are addressed by id, so a repeated
write is harmless), never once the position is known to have passed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge import registers as rmap
from firmware_bridge.link import EventStatus, LinkEvent
from firmware_bridge.messages import AckResult, FaultCode, Fire, NakReason, Pick, Status, StatusFlags
from firmware_bridge.modbus_io import EXC_DEVICE_BUSY, ModbusExceptionError, ModbusLinkError, RegisterClient, Transport
from firmware_bridge.ratelimit import BurstLog
from firmware_bridge.sync import SyncEstimator

log = logging.getLogger(__name__)
MS = 1_000_000


@dataclass(frozen=True, slots=True)
class ModbusLinkConfig:
    """Timing of the Modbus link (milliseconds of host time).

    Attributes:
        heartbeat_ms: heartbeat register write period (well under the PLC's 100 ms watchdog).
        poll_ms: header/state poll period while commands are outstanding.
        idle_poll_ms: poll period with nothing outstanding.
        max_retries: re-writes of a command after a transaction failed.
        backoff_min_ms: first pause after "queue full" (busy slot).
        backoff_max_ms: longest pause.
        reconnect_min_ms: first wait before reconnecting.
        reconnect_max_ms: longest wait between reconnection attempts.
    """

    heartbeat_ms: float = 25.0
    poll_ms: float = 5.0
    idle_poll_ms: float = 50.0
    max_retries: int = 3
    backoff_min_ms: float = 2.0
    backoff_max_ms: float = 200.0
    reconnect_min_ms: float = 50.0
    reconnect_max_ms: float = 2000.0


@dataclass(slots=True)
class _Cmd:
    command: Fire | Pick
    accepted: bool = False  # slot state QUEUED seen
    tries: int = 0
    not_before_ns: int = 0


def _first_count(c: Fire | Pick) -> int:
    return c.open_count if isinstance(c, Fire) else c.pick_count


class ModbusLink:
    """Host side of the PLC register protocol (implements ``firmware_bridge.link.ControllerLink``).

    Args:
        transport: ``"tcp"`` or ``"rtu"``.
        host: PLC address (TCP).
        port: PLC port (TCP).
        serial_url: serial port (RTU).
        baudrate: RTU line rate.
        unit_id: Modbus device id.
        timeout_ms: per-transaction timeout.
        config: timing.
        session_id: this host run's id; random when None.
        time_ns: host monotonic clock.
        arm: False for a monitor that never arms the PLC nor writes its heartbeat.
    """

    def __init__(
        self,
        transport: Transport = "tcp",
        host: str = "127.0.0.1",
        port: int = 502,
        serial_url: str | None = None,
        baudrate: int = 115200,
        unit_id: int = 1,
        timeout_ms: float = 100.0,
        config: ModbusLinkConfig | None = None,
        session_id: int | None = None,
        time_ns: Callable[[], int] = time.monotonic_ns,
        arm: bool = True,
    ) -> None:
        self.arm_enabled = arm
        self.cfg = config or ModbusLinkConfig()
        self.client = RegisterClient(transport, host, port, serial_url, baudrate, unit_id, timeout_ms / 1000.0)
        self.session_id = (session_id if session_id is not None else random.getrandbits(32) or 1) & 0xFFFFFFFF
        self.sync = SyncEstimator()
        self._time_ns = time_ns
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._cmds: dict[int, _Cmd] = {}
        self._to_write: OrderedDict[int, None] = OrderedDict()  # ids whose slot must be (re)written, in order
        self._by_position: list[tuple[int, int]] = []  # heap of (first count, id) of those
        self._written: dict[int, None] = {}  # ids written and not final: their slot states are polled
        self._slot_owner: dict[int, int] = {}  # slot -> the outstanding id written there (never overwritten)
        self._inbox: deque[Fire | Pick | int] = deque()  # submissions and cancels, handed over without the lock
        self._kick = threading.Event()
        self._finished: OrderedDict[int, EventStatus] = OrderedDict()
        self._cancels: dict[int, int] = {}  # command id -> tries
        self._events: list[LinkEvent] = []
        self._status: Status | None = None
        self._header: rmap.Header | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._armed = False
        self._connected = False
        self._disarm_requested = False
        self._hb = 0
        self._next_hb_ns = 0
        self._next_poll_ns = 0
        self._paused_until_ns = 0
        self._backoff_ns = 0
        self._last_count: int | None = None
        self._late_floor: int | None = None  # a position the PLC called late
        self._burst = BurstLog(log, f"Modbus link to {self.client.where} failing")
        self.counters: dict[str, int] = {
            k: 0
            for k in (
                "sent",
                "retransmits",
                "accepted",
                "executed",
                "late",
                "late_local",
                "rejected",
                "cancelled",
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
            )
        }

    # ---------------------------------------------------------------- public

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"modbus-link {self.client.where}", daemon=True)
            self._thread.start()

    def wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not (self._connected and (self._armed or not self.arm_enabled)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
            return True

    def submit(self, command: Fire | Pick) -> None:
        self._inbox.append(command)
        self._kick.set()

    def cancel(self, command_id: int) -> None:
        self._inbox.append(command_id)
        self._kick.set()

    def poll_events(self) -> list[LinkEvent]:
        with self._lock:
            ev, self._events = self._events, []
            return ev

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._inbox or self._to_write:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
            return True

    def fetch_reports(self) -> None:
        """Poll the PLC now instead of at the next poll period (the caller knows something executed)."""
        if self._next_poll_ns != 0:
            self._next_poll_ns = 0
            self._kick.set()

    def last_status(self) -> Status | None:
        with self._lock:
            return self._status

    def last_header(self) -> rmap.Header | None:
        with self._lock:
            return self._header

    def request_status(self, timeout_s: float = 1.0) -> Status | None:
        """Poll now and return the fresh status."""
        with self._changed:
            n0 = self.counters["polls"]
            self._next_poll_ns = 0
            self._changed.notify_all()
            deadline = time.monotonic() + timeout_s
            while self.counters["polls"] == n0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(min(left, 0.05))
            return self._status

    def ping(self, timeout_s: float = 1.0) -> bool:
        """Probe the odometer now (the result is in ``sync``)."""
        n0 = self.sync.count
        self.request_status(timeout_s)
        return self.sync.count > n0

    def stats(self) -> dict[str, int]:
        with self._lock:
            s = dict(self.counters)
            s["outstanding"] = len(self._cmds)
            s["connected"] = int(self._connected)
            return s

    def close(self, disarm: bool = True) -> None:
        if self._thread is not None and disarm and self.arm_enabled:
            with self._changed:
                self._disarm_requested = True
                self._changed.notify_all()
            deadline = time.monotonic() + 0.3
            with self._changed:
                while self._disarm_requested and self._connected and time.monotonic() < deadline:
                    self._changed.wait(0.01)
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.client.close()

    # --------------------------------------------------------------- private

    def _drain_inbox(self) -> None:
        """Take queued submissions and cancels (lock held), in slices so heartbeats keep their period."""
        for _ in range(min(len(self._inbox), 256)):
            item = self._inbox.popleft()
            if isinstance(item, int):
                c = self._cmds.get(item)
                if c is None:
                    continue
                if item in self._to_write and c.tries == 0 and not c.accepted:
                    self._finish(item, "cancelled", detail="cancelled before sending")
                else:
                    self._cancels.setdefault(item, 0)
                continue
            cid = item.command_id
            if cid not in self._cmds and cid not in self._finished:
                self._cmds[cid] = _Cmd(item)
                self._mark_write(cid)

    def _mark_write(self, cid: int, front: bool = False) -> None:
        c = self._cmds[cid]
        self._written.pop(cid, None)
        self._to_write[cid] = None
        if front:
            self._to_write.move_to_end(cid, last=False)
        heapq.heappush(self._by_position, (_first_count(c.command), cid))

    def _finish(self, cid: int, status: EventStatus, **kw: object) -> None:
        self._to_write.pop(cid, None)
        self._written.pop(cid, None)
        if self._slot_owner.get(rmap.slot_of(cid)) == cid:
            del self._slot_owner[rmap.slot_of(cid)]
        if self._cmds.pop(cid, None) is None:
            return
        self._cancels.pop(cid, None)
        self.counters[status] = self.counters.get(status, 0) + 1
        self._events.append(LinkEvent(cid, status, **kw))  # type: ignore[arg-type]
        self._finished[cid] = status
        while len(self._finished) > 8192:
            self._finished.popitem(last=False)

    def _txn(self) -> None:
        self.counters["transactions"] += 1

    def _run(self) -> None:
        backoff_ns = int(self.cfg.reconnect_min_ms * MS)
        while not self._stop.is_set():
            if not self._connected:
                if self.client.connect():
                    with self._changed:
                        self._connected = True
                        self._armed = False
                        self._changed.notify_all()
                    backoff_ns = int(self.cfg.reconnect_min_ms * MS)
                    log.info("Modbus link to %s connected", self.client.where)
                else:
                    with self._changed:
                        self._drain_inbox()
                        self._expire_unsendable()
                        self._changed.notify_all()
                    self._kick.wait(backoff_ns / 1e9)
                    self._kick.clear()
                    backoff_ns = min(backoff_ns * 2, int(self.cfg.reconnect_max_ms * MS))
                    continue
            try:
                self._cycle()
            except ModbusLinkError as e:
                self.counters["timeouts"] += 1
                self._burst.event(self._time_ns(), str(e))
                with self._changed:
                    # accepted commands are re-verified by the next poll of the slot states (the PLC may
                    # have executed, dropped or, after a restart, forgotten them)
                    self._connected = False
                    self._armed = False
                    self.counters["reconnects"] += 1
                    self._changed.notify_all()

    def _cycle(self) -> None:
        with self._changed:
            self._drain_inbox()
        now = self._time_ns()
        if self._disarm_requested:
            self.client.write(rmap.REG_CONTROL, [rmap.CONTROL_DISARM, *rmap.u32_to_regs(self.session_id)])
            self._txn()
            with self._changed:
                self._disarm_requested = False
                self._armed = False
                self._changed.notify_all()
            self._stop.wait(0.05)
            return
        if not self._armed and self.arm_enabled:
            self._poll(now)  # learn session / fault state first
            if not self._armed:
                self.client.write(rmap.REG_CONTROL, [rmap.CONTROL_ARM, *rmap.u32_to_regs(self.session_id)])
                self._txn()
                self._heartbeat(now)
                with self._changed:
                    self._armed = True
                    self._changed.notify_all()
        if self.arm_enabled and now >= self._next_hb_ns:
            self._heartbeat(now)
        if self._armed:
            self._send_commands()
        self._send_cancels()
        now = self._time_ns()
        if now >= self._next_poll_ns:
            self._poll(now)
        self._wait()

    def _wait(self) -> None:
        with self._changed:
            now = self._time_ns()
            t = min(self._next_hb_ns, self._next_poll_ns)
            if self._cancels or self._disarm_requested or self._inbox:
                t = now
            if self._to_write and self._armed:
                first = self._cmds[next(iter(self._to_write))].not_before_ns
                t = min(t, max(self._paused_until_ns, first))
        if t > now:
            self._kick.wait((t - now) / 1e9)
        self._kick.clear()

    def _heartbeat(self, now: int) -> None:
        if not self.arm_enabled:
            self._next_hb_ns = now + int(self.cfg.heartbeat_ms * MS)
            return
        self._hb = (self._hb + 1) & 0xFFFF
        self.client.write_one(rmap.REG_HEARTBEAT, self._hb)
        self._txn()
        self.counters["heartbeats"] += 1
        self._next_hb_ns = now + int(self.cfg.heartbeat_ms * MS)

    def _known_passed(self, c: Fire | Pick) -> bool:
        return self._last_count is not None and _first_count(c) <= self._last_count

    def _floor(self) -> int:
        """Positions at or below this have certainly passed (last count seen, or a position refused late)."""
        known = [v for v in (self._last_count, self._late_floor) if v is not None]
        return max(known) if known else -(1 << 63)

    def _expire_unsendable(self) -> None:
        heap = self._by_position
        budget = 1000
        floor = self._floor()
        while heap and heap[0][0] <= floor and budget > 0:
            budget -= 1
            _first, cid = heapq.heappop(heap)
            if cid in self._to_write:
                self.counters["late_local"] += 1
                self._finish(cid, "late", detail="position passed before it could be sent")
        if len(heap) > 4 * len(self._to_write) + 64:
            self._by_position = [(f, i) for f, i in heap if i in self._to_write]
            heapq.heapify(self._by_position)

    def _send_commands(self) -> None:
        while not self._stop.is_set():
            now = self._time_ns()
            if self.arm_enabled and now >= self._next_hb_ns:
                self._heartbeat(now)
            if now >= self._next_poll_ns:
                return  # poll between writes: fresh encoder count, slot states, executions
            with self._changed:
                self._expire_unsendable()
                if now < self._paused_until_ns:
                    return
                todo = self._next_to_write(now)
                if todo is None:
                    return
                if todo.tries > self.cfg.max_retries:
                    cid = todo.command.command_id
                    self.counters["no_answer"] += 1
                    self._finish(cid, "rejected", detail=f"no answer after {todo.tries} writes")
                    self._cancels[cid] = 0
                    continue
                if todo.tries > 0 and not todo.accepted:
                    self.counters["retransmits"] += 1
                todo.tries += 1
                cmd = todo.command
            self._write_command(todo, cmd)

    def _next_to_write(self, now: int) -> _Cmd | None:
        """The first command to write whose slot is not held by another outstanding command."""
        for cid in itertools.islice(self._to_write, 128):
            c = self._cmds[cid]
            if c.not_before_ns > now:
                return None
            owner = self._slot_owner.get(rmap.slot_of(cid))
            if owner is None or owner == cid:
                return c
        return None

    def _write_command(self, entry: _Cmd, cmd: Fire | Pick) -> None:
        base = rmap.slot_address(rmap.slot_of(cmd.command_id))
        self.counters["sent"] += 1
        try:
            regs = self.client.write_read(base, rmap.encode_slot(cmd), base + rmap.SLOT_STATE, rmap.SLOT_READ_SIZE)
            self._txn()
        except ModbusExceptionError as e:
            self._txn()
            self.counters["exceptions"] += 1
            with self._changed:
                if e.code == EXC_DEVICE_BUSY:
                    self.counters["nak_queue_full"] += 1
                    now = self._time_ns()
                    self._backoff_ns = min(
                        max(self._backoff_ns * 2, int(self.cfg.backoff_min_ms * MS)), int(self.cfg.backoff_max_ms * MS)
                    )
                    entry.tries = 0
                    entry.not_before_ns = now + self._backoff_ns
                    self._paused_until_ns = now + self._backoff_ns
                    self.counters["backoffs"] += 1
                else:
                    self._finish(cmd.command_id, "rejected", detail=f"PLC exception {e.code}")
                self._changed.notify_all()
            return
        res = rmap.SlotResult.from_regs(regs)
        with self._changed:
            self._backoff_ns = 0
            self._apply_slot(entry, res)
            self._changed.notify_all()

    def _apply_slot(self, entry: _Cmd, res: rmap.SlotResult) -> None:
        cid = entry.command.command_id
        st = res.state
        if st == rmap.SlotState.QUEUED:
            self._to_write.pop(cid, None)
            self._written[cid] = None
            self._slot_owner[rmap.slot_of(cid)] = cid
            if not entry.accepted:
                entry.accepted = True
                self.counters["accepted"] += 1
                self._events.append(LinkEvent(cid, "accepted"))
        elif st == rmap.SlotState.EXECUTED:
            if not entry.accepted:
                entry.accepted = True
                self.counters["accepted"] += 1
                self._events.append(LinkEvent(cid, "accepted"))
            self._finish(cid, "executed", open_count=res.open_count, close_count=res.close_count)
        elif st == rmap.SlotState.LATE:
            self._finish(cid, "late", detail="PLC refused: LATE")
            # the belt only moves forward: whatever opens earlier is late too
            first = _first_count(entry.command)
            self._late_floor = first if self._late_floor is None else max(self._late_floor, first)
        elif st == rmap.SlotState.CANCELLED:
            self._finish(cid, "cancelled", detail="cancelled by the PLC")
        elif st == rmap.SlotState.REJECTED:
            if res.reason == NakReason.NOT_ARMED:
                entry.tries = 0
                self._mark_write(cid, front=True)
                self._armed = False
                return
            name = NakReason(res.reason).name if res.reason in NakReason._value2member_map_ else str(res.reason)
            self._finish(cid, "rejected", detail=f"PLC refused: {name}")
        else:  # EMPTY or DROPPED: the PLC lost it (restart, fault): write it again
            entry.tries = 0
            self._mark_write(cid, front=True)

    def _send_cancels(self) -> None:
        while True:
            with self._changed:
                if not self._cancels:
                    return
                cid, tries = next(iter(self._cancels.items()))
                if tries > self.cfg.max_retries:
                    del self._cancels[cid]
                    continue
                self._cancels[cid] = tries + 1
            regs = self.client.write_read(rmap.REG_CANCEL_ID, rmap.u32_to_regs(cid), rmap.REG_CANCEL_RESULT, 1)
            self._txn()
            with self._changed:
                self._cancels.pop(cid, None)
                if regs[0] == AckResult.CANCELLED:
                    self._finish(cid, "cancelled", detail="cancelled by the PLC")
                self._changed.notify_all()

    def _poll(self, now: int) -> None:
        t0 = self._time_ns()
        regs = self.client.read(0, rmap.POLL_SIZE)
        t1 = self._time_ns()
        self._txn()
        h = rmap.Header.from_regs(regs)
        if h.magic != rmap.MAGIC:
            raise ModbusLinkError(
                f"device at {self.client.where} does not implement this register map (register 0 = 0x{h.magic:04x})"
            )
        self.sync.add(t0, t1, h.device_time_us, h.encoder_count)
        executed_slots: list[tuple[_Cmd, int]] = []
        with self._changed:
            self.counters["polls"] += 1
            self._header = h
            self._last_count = h.encoder_count
            self._status = Status(
                version=h.version,
                flags=h.flags,
                fault_code=h.fault_code,
                valve_count=h.valve_count,
                queue_len=h.queue_len,
                queue_capacity=h.queue_capacity,
                encoder_count=h.encoder_count,
                executed=h.executed,
                late=h.late,
                rejected=h.rejected,
                bad_frames=h.bad_writes,
                watchdog_trips=h.watchdog_trips,
                session_id=h.session_id,
            )
            armed_here = bool(h.flags & StatusFlags.ARMED) and h.session_id == self.session_id
            if self._armed and not armed_here:
                self.counters["rearms"] += 1
                if h.fault_code == FaultCode.WATCHDOG:
                    self.counters["watchdog_faults"] += 1
                    log.warning("PLC watchdog tripped (valves closed); re-arming and rewriting outstanding commands")
                elif h.fault_code != FaultCode.NONE:
                    self.counters["faults"] += 1
                    log.error("PLC fault %d: valves closed; commands refused", h.fault_code)
                    for cid in list(self._cmds):
                        self._finish(cid, "rejected", detail=f"PLC fault {h.fault_code}")
                else:
                    log.warning("PLC is not armed for this session (restarted?); re-arming")
            self._armed = armed_here
            mirror = regs[rmap.STATE_BASE : rmap.STATE_BASE + rmap.SLOT_COUNT]
            for cid0 in list(self._written):
                c = self._cmds[cid0]
                st = mirror[rmap.slot_of(c.command.command_id)] & 0xFF
                if st == rmap.SlotState.EXECUTED:
                    executed_slots.append((c, rmap.slot_of(c.command.command_id)))
                elif st != rmap.SlotState.QUEUED:
                    self._apply_slot(
                        c,
                        rmap.SlotResult(
                            rmap.SlotState(st) if st in rmap.SlotState._value2member_map_ else rmap.SlotState.EMPTY,
                            mirror[rmap.slot_of(c.command.command_id)] >> 8,
                            0,
                            0,
                        ),
                    )
            outstanding = bool(self._cmds)
            self._changed.notify_all()
        for c, slot in executed_slots:
            base = rmap.slot_address(slot)
            full = self.client.read(base, rmap.SLOT_SIZE)
            self._txn()
            with self._changed:
                cmd = rmap.decode_slot(full[: rmap.SLOT_WRITE_SIZE])
                if cmd is not None and cmd.command_id == c.command.command_id:
                    self._apply_slot(c, rmap.SlotResult.from_regs(full[rmap.SLOT_STATE :]))
                self._changed.notify_all()
        period = self.cfg.poll_ms if outstanding else self.cfg.idle_poll_ms
        self._next_poll_ns = now + int(period * MS)
