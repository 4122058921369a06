"""The controller's command logic, shared by both emulators (sans-IO, thread-safe).

This is what the firmware of a valve controller or the program of a PLC does
with a command once it has been received, whatever the transport: validate it,
refuse it if late, clamp the pulse width, queue it in the device's compare
unit, keep the command id for idempotent retries, run the watchdog, and turn
completed pulses into reports. ``PROTOCOL.md`` section 4 is the specification;
this module is its executable reference.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from firmware_bridge.device import DeviceModel, Execution
from firmware_bridge.messages import (
    EPOCH_UNSET,
    PROTOCOL_VERSION,
    AckResult,
    FaultCode,
    Fire,
    NakReason,
    Pick,
    Status,
    StatusFlags,
    next_epoch,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ControllerLimits:
    """Safety limits of a controller.

    Attributes:
        queue_capacity: commands that may be queued at once; more are refused QUEUE_FULL.
        watchdog_ms: armed and no heartbeat for this long (wall time) -> all valves closed, fault latched.
        min_lead_us: a command must open at least this far ahead of the current count (at the current speed).
        max_ahead_counts: a command opening further ahead than this is refused BAD_FIELD.
        min_pulse_us: shorter pulses are lengthened to this (a valve needs a minimum on-time).
        max_pulse_us: longer pulses are shortened to this (never leave air on).
        history: executed/cancelled command ids remembered for idempotent retries.
    """

    queue_capacity: int = 256
    watchdog_ms: float = 100.0
    min_lead_us: int = 200
    max_ahead_counts: int = 1 << 40
    min_pulse_us: int = 1000
    max_pulse_us: int = 200_000
    history: int = 4096


@dataclass(frozen=True, slots=True)
class Outcome:
    """Answer to one command: ``accepted`` with an ``AckResult`` code, else a ``NakReason`` code."""

    accepted: bool
    code: int
    command_id: int


@dataclass(slots=True)
class _Entry:
    command: Fire | Pick
    scheduled: Fire | Pick  # after clamping


@dataclass
class ControllerCounters:
    """Running totals reported in STATUS and the PLC's counter registers."""

    executed: int = 0
    late: int = 0
    rejected: int = 0
    queue_full: int = 0
    bad_frames: int = 0
    watchdog_trips: int = 0
    clamped: int = 0
    duplicates: int = 0
    cancelled: int = 0
    lost: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class ControllerCore:
    """Command handling of one controller over a ``DeviceModel``.

    Wall-clock times (``wall_ns``) drive only the watchdog; positions come from
    the device's encoder. Every public method takes the internal lock.

    Epochs (PROTOCOL.md section 4.6): ``boot_id`` is drawn at construction (a
    controller start); ``epoch`` starts at 1 and is incremented whenever the count
    is seen to move backwards (re-zeroed) or ``new_epoch`` is called; every queued
    command is then dropped and a command of another epoch is refused
    ``WRONG_EPOCH``. An unstamped command (epoch 0) is taken in the current epoch:
    the serial protocol layer refuses those itself; the register map carries no
    epoch before its own version 2.

    Args:
        device: encoder and outputs.
        limits: safety limits.
        boot_id: this start's identifier (random non-zero when None).
    """

    def __init__(self, device: DeviceModel, limits: ControllerLimits | None = None, boot_id: int | None = None) -> None:
        self.device = device
        self.limits = limits or ControllerLimits()
        self.counters = ControllerCounters()
        self.boot_id = (boot_id if boot_id is not None else random.getrandbits(32) or 1) & 0xFFFFFFFF
        self._epoch = 1
        self._last_seen_count: int | None = device.encoder_count()
        self._epoch_changes: list[tuple[int, int]] = []  # (new epoch, count at the change) not yet announced
        self._lock = threading.RLock()
        self._armed = False
        self._fault = FaultCode.NONE
        self._session_id = 0
        self._last_heartbeat_ns = 0
        self._pending: dict[int, _Entry] = {}
        self._lost: OrderedDict[int, _Entry] = OrderedDict()
        self._history: OrderedDict[int, tuple[Fire | Pick, Execution | None]] = OrderedDict()
        self._cut_short: list[Execution] = []  # pulses cut short by an epoch change, reported by the next tick

    # ------------------------------------------------------------------ state

    @property
    def armed(self) -> bool:
        with self._lock:
            return self._armed

    @property
    def fault(self) -> FaultCode:
        with self._lock:
            return self._fault

    @property
    def session_id(self) -> int:
        with self._lock:
            return self._session_id

    def is_pending(self, command_id: int) -> bool:
        """True while a command is queued (accepted, not executed, cancelled or dropped)."""
        with self._lock:
            return command_id in self._pending

    def queue_len(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def epoch(self) -> int:
        """The current encoder epoch (after checking the count for a reset)."""
        with self._lock:
            self._observe_count()
            return self._epoch

    def new_epoch(self, why: str) -> None:
        """Start a new encoder epoch (count re-zeroed or jumped): close everything, drop the queue.

        Pulses cut short are reported by the next ``tick``; the dropped commands are not kept
        in the history (a command of the old epoch is refused ``WRONG_EPOCH`` from now on).
        """
        with self._lock:
            self._epoch = next_epoch(self._epoch)
            self._last_seen_count = self.device.encoder_count()
            self._epoch_changes.append((self._epoch, self._last_seen_count))
            log.warning("encoder epoch %d (%s): valves closed, %d queued commands dropped", self._epoch, why, len(self._pending))
            self._cut_short += self._drop_all()

    def take_epoch_changes(self) -> list[tuple[int, int]]:
        """``(epoch, count)`` of every epoch change since the last call (the serial controller sends EPOCH for each)."""
        with self._lock:
            out, self._epoch_changes = self._epoch_changes, []
            return out

    def _observe_count(self) -> None:
        """Read the count; one that went backwards starts a new epoch (lock held)."""
        now = self.device.encoder_count()
        last, self._last_seen_count = self._last_seen_count, now
        if last is not None and now < last:
            self.new_epoch(f"count went back from {last} to {now}")

    def status(self) -> Status:
        """A STATUS message describing the controller now."""
        with self._lock:
            self._observe_count()
            flags = StatusFlags(0)
            if self._armed:
                flags |= StatusFlags.ARMED
            if self._fault != FaultCode.NONE:
                flags |= StatusFlags.FAULTED
            if self.device.open_valve_count() > 0:
                flags |= StatusFlags.VALVES_OPEN
            flags |= StatusFlags.ENCODER_OK
            c = self.counters
            m = 0xFFFFFFFF
            return Status(
                version=PROTOCOL_VERSION,
                flags=int(flags),
                fault_code=int(self._fault),
                valve_count=self.device.valve_count,
                queue_len=len(self._pending),
                queue_capacity=self.limits.queue_capacity,
                encoder_count=self.device.encoder_count(),
                executed=c.executed & m,
                late=c.late & m,
                rejected=c.rejected & m,
                bad_frames=c.bad_frames & m,
                watchdog_trips=c.watchdog_trips & m,
                session_id=self._session_id,
                boot_id=self.boot_id,
                epoch=self._epoch,
            )

    # ------------------------------------------------------------ commands

    def arm(self, session_id: int, wall_ns: int) -> None:
        """Arm (clears a latched fault). A different ``session_id`` drops queued commands and the id history."""
        with self._lock:
            if session_id != self._session_id:
                self._drop_all()
                self._history.clear()
                self._session_id = session_id
            if self._fault != FaultCode.NONE:
                log.warning("controller re-armed after fault %s", self._fault.name)
            self._fault = FaultCode.NONE
            self._armed = True
            self._last_heartbeat_ns = wall_ns

    def disarm(self) -> list[Execution]:
        """Close all valves, drop queued commands, refuse commands until ARM.

        Returns:
            pulses that were open and have now been cut short (to be reported).
        """
        with self._lock:
            self._armed = False
            return self._drop_all()

    def heartbeat(self, wall_ns: int) -> None:
        """Feed the watchdog."""
        with self._lock:
            self._last_heartbeat_ns = wall_ns

    def submit(self, command: Fire | Pick) -> Outcome:
        """Validate and queue a FIRE or PICK (idempotent by command id)."""
        with self._lock:
            cid = command.command_id
            if not self._armed:
                return Outcome(False, NakReason.NOT_ARMED, cid)
            self._observe_count()
            if command.epoch not in (EPOCH_UNSET, self._epoch):  # before the id: never taken for a retransmission
                return self._refuse(NakReason.WRONG_EPOCH, cid)
            entry = self._pending.get(cid)
            if entry is not None:
                if entry.command == command:
                    self.counters.duplicates += 1
                    return Outcome(True, AckResult.DUPLICATE, cid)
                return self._refuse(NakReason.CONFLICT, cid)
            old = self._history.get(cid)
            if old is not None:
                if old[0] != command:
                    return self._refuse(NakReason.CONFLICT, cid)
                self.counters.duplicates += 1
                return Outcome(True, AckResult.DONE if old[1] is not None else AckResult.CANCELLED, cid)
            problem = self._field_problem(command)
            if problem:
                log.debug("command %d refused: %s", cid, problem)
                return self._refuse(NakReason.BAD_FIELD, cid)
            now = self.device.encoder_count()
            speed = max(self.device.speed_counts_per_s(), 0.0)
            first = command.open_count if isinstance(command, Fire) else command.pick_count
            if first <= now + int(speed * self.limits.min_lead_us / 1e6):
                self.counters.late += 1
                return Outcome(False, NakReason.LATE, cid)
            if first - now > self.limits.max_ahead_counts:
                return self._refuse(NakReason.BAD_FIELD, cid)
            if len(self._pending) >= self.limits.queue_capacity:
                self.counters.queue_full += 1
                return Outcome(False, NakReason.QUEUE_FULL, cid)
            scheduled = self._clamp(command, speed) if isinstance(command, Fire) else command
            if isinstance(scheduled, Fire):
                result = self.device.schedule_fire(
                    cid, scheduled.valve_first, scheduled.valve_last, scheduled.open_count, scheduled.close_count
                )
            else:
                result = self.device.schedule_pick(cid, scheduled.x_um, scheduled.y_um, scheduled.pick_count)
            if result == "late":
                self.counters.late += 1
                return Outcome(False, NakReason.LATE, cid)
            if result != "accepted":
                return self._refuse(NakReason.BAD_FIELD, cid)
            self._pending[cid] = _Entry(command, scheduled)
            return Outcome(True, AckResult.QUEUED, cid)

    def cancel(self, command_id: int) -> Outcome:
        """Cancel a queued command that has not started (idempotent)."""
        with self._lock:
            if command_id in self._pending and self.device.cancel(command_id):
                entry = self._pending.pop(command_id)
                self._remember(command_id, entry.command, None)
                self.counters.cancelled += 1
                return Outcome(True, AckResult.CANCELLED, command_id)
            old = self._history.get(command_id)
            if old is not None and old[1] is None:
                return Outcome(True, AckResult.CANCELLED, command_id)
            return Outcome(True, AckResult.UNKNOWN_ID, command_id)

    def execution_of(self, command_id: int) -> Execution | None:
        """How an already executed command ran (to repeat its report), else None."""
        with self._lock:
            old = self._history.get(command_id)
            return old[1] if old is not None else None

    # ---------------------------------------------------------------- time

    def tick(self, wall_ns: int) -> tuple[list[Execution], FaultCode | None]:
        """Run the watchdog and collect completed commands.

        Returns:
            ``(executions, fault)``: commands completed since the last tick, and the
            fault latched by this tick (None if none).
        """
        with self._lock:
            fault: FaultCode | None = None
            self.device.tick()
            self._observe_count()
            cut, self._cut_short = self._cut_short, []
            if self._armed and wall_ns - self._last_heartbeat_ns > self.limits.watchdog_ms * 1e6:
                fault = FaultCode.WATCHDOG
                self.counters.watchdog_trips += 1
                log.warning(
                    "watchdog: no heartbeat for %.1f ms; all valves closed, %d queued commands dropped, re-arm needed",
                    (wall_ns - self._last_heartbeat_ns) / 1e6,
                    len(self._pending),
                )
                self._armed = False
                self._fault = fault
                dropped = self._drop_all()
            else:
                dropped = []
            done = cut + dropped + [e for e in self.device.poll_executed() if self._complete(e)]
            if self._pending:
                done += self._expire()
            return done, fault

    def latch_fault(self, code: FaultCode) -> list[Execution]:
        """Latch a fault from outside (e.g. a failed output driver): close everything, disarm."""
        with self._lock:
            self._armed = False
            self._fault = code
            return self._drop_all()

    # ------------------------------------------------------------- helpers

    def _refuse(self, reason: NakReason, cid: int) -> Outcome:
        self.counters.rejected += 1
        return Outcome(False, reason, cid)

    def _field_problem(self, c: Fire | Pick) -> str:
        if isinstance(c, Fire):
            n = self.device.valve_count
            if not 0 <= c.valve_first <= c.valve_last < n:
                return f"valves {c.valve_first}..{c.valve_last} outside 0..{n - 1}"
            if c.close_count <= c.open_count:
                return f"close_count {c.close_count} <= open_count {c.open_count}"
        return ""

    def _clamp(self, c: Fire, speed: float) -> Fire:
        if speed <= 0:
            return c
        lo = max(1, int(speed * self.limits.min_pulse_us / 1e6))
        hi = max(lo, int(speed * self.limits.max_pulse_us / 1e6))
        width = c.close_count - c.open_count
        clamped = min(max(width, lo), hi)
        if clamped == width:
            return c
        self.counters.clamped += 1
        return Fire(c.command_id, c.valve_first, c.valve_last, c.open_count, c.open_count + clamped)

    def _complete(self, e: Execution) -> bool:
        entry = self._pending.pop(e.command_id, None)
        if entry is None:
            entry = self._lost.pop(e.command_id, None)  # reported after it was given up: report it still
        if entry is None:
            return False
        self.counters.executed += 1
        self._remember(e.command_id, entry.command, e)
        return True

    def _remember(self, cid: int, command: Fire | Pick, execution: Execution | None) -> None:
        self._history[cid] = (command, execution)
        while len(self._history) > self.limits.history:
            self._history.popitem(last=False)

    def _drop_all(self) -> list[Execution]:
        self.device.close_all()
        # pulses interrupted while open count as executed (their report shows the early close)
        done = [e for e in self.device.poll_executed() if self._complete(e)]
        self._pending.clear()
        return done

    def _expire(self) -> list[Execution]:
        """Forget queued commands the device never reported although their close passed long ago.

        Returns executions that arrived meanwhile (the device may report between two reads of its encoder).
        """
        now = self.device.encoder_count()
        slack = max(int(self.device.speed_counts_per_s() * 1.0), 1000)
        overdue = [
            cid
            for cid, entry in self._pending.items()
            if now > (entry.scheduled.close_count if isinstance(entry.scheduled, Fire) else entry.scheduled.pick_count) + slack
        ]
        if not overdue:
            return []
        done = [e for e in self.device.poll_executed() if self._complete(e)]
        for cid in overdue:
            entry = self._pending.pop(cid, None)
            if entry is None:
                continue
            self.counters.lost += 1
            self._lost[cid] = entry
            while len(self._lost) > self.limits.history:
                self._lost.popitem(last=False)
            log.warning("command %d was never reported executed by the device; given up", cid)
        return done
