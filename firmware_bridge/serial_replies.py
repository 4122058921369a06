"""What the serial host does with each frame the controller sends (part of ``HostSession``, sans-IO).

ACK/NAK matching, reports, faults, and the epoch and version rules of
PROTOCOL.md sections 4.6, 5 and 8: before every ARM the host asks for a STATUS
(protocol version, boot id, epoch), and arms only once a STATUS taken after the
ARM confirms it; a new boot id or epoch (STATUS, PONG, EPOCH), or a count that
moves backwards or faster than the belt can, finishes every pending command as
``lost`` and restarts the encoder sync. Unknown codes never raise: they are
logged once per burst, counted, and the command gets an outcome.
"""

from __future__ import annotations

import logging

from firmware_bridge.codec import DecodedFrame, FrameError, FrameErrorKind
from firmware_bridge.epochs import EpochChange, EpochTracker
from firmware_bridge.messages import (
    PROTOCOL_VERSION,
    STATUS_V1_PAYLOAD,
    Ack,
    AckResult,
    Arm,
    Cancel,
    Epoch,
    Fault,
    FaultCode,
    Fired,
    Message,
    MsgType,
    Nak,
    NakReason,
    Picked,
    Pong,
    Status,
    StatusFlags,
    enum_name,
)
from firmware_bridge.ratelimit import BurstLog
from firmware_bridge.serial_commands import CommandQueue, CommandState, PendingFrame, SessionConfig, first_count
from firmware_bridge.sync import SyncEstimator

log = logging.getLogger("firmware_bridge.host_session")


class ReplyHandler:
    """Frame handling of ``HostSession`` (which owns the state declared here)."""

    cfg: SessionConfig
    session_id: int
    arm_enabled: bool
    sync: SyncEstimator
    armed: bool
    status: Status | None
    fault: FaultCode | None
    counters: dict[str, int]
    epochs: EpochTracker
    protocol_error: str | None
    _q: CommandQueue
    _control: dict[int, PendingFrame]
    _cancels: dict[int, PendingFrame]
    _pings: dict[int, int]
    _backoff_ns: int
    _paused_until_ns: int
    _pause_started_ns: int
    _window: int
    _last_count: int | None
    _late_floor: int | None
    _burst: BurstLog
    _hello: bool
    _confirming: bool
    _resync_until_ns: int | None
    _next_status_ns: int
    _next_ping_ns: int
    _next_heartbeat_ns: int

    def _write(self, message: Message) -> int:
        raise NotImplementedError

    def _send_control(self, message: Message, now_ns: int) -> None:
        raise NotImplementedError

    def _requeue_outstanding(self, now_ns: int) -> None:
        raise NotImplementedError

    def _handle(self, frame: DecodedFrame, now_ns: int) -> None:
        m = frame.message
        if isinstance(m, Ack):
            self._on_ack(frame.seq, m, now_ns)
        elif isinstance(m, Nak):
            self._on_nak(m, now_ns)
        elif isinstance(m, Fired):
            self._last_count = m.open_count if self._last_count is None else max(self._last_count, m.open_count)
            self._on_executed(m.command_id, m.open_count, m.close_count)
        elif isinstance(m, Picked):
            self._last_count = m.pick_count if self._last_count is None else max(self._last_count, m.pick_count)
            self._on_executed(m.command_id, m.pick_count, m.pick_count)
        elif isinstance(m, Pong):
            sent = self._pings.pop(m.host_time_ns, None)
            self._observe(m.boot_id, m.epoch, m.encoder_count, now_ns, m.device_time_us, sent)
            if sent is not None:
                self.sync.add(sent, now_ns, m.device_time_us, m.encoder_count)
            self._last_count = m.encoder_count
        elif isinstance(m, Status):
            self._on_status(m, now_ns)
        elif isinstance(m, Epoch):
            self._observe(m.boot_id, m.epoch, m.encoder_count, now_ns)
        elif isinstance(m, Fault):
            self._on_fault(m, now_ns)
        else:
            self.counters["bad_frames"] += 1
            self._burst.event(now_ns, f"unexpected {type(m).__name__} from controller")

    def _on_executed(self, cid: int, open_count: int, close_count: int) -> None:
        if self._q.finish(cid, "executed", open_count=open_count, close_count=close_count):
            return
        earlier = self._q.outcome_of(cid)
        # a report again after DONE is normal, and "lost" said the outcome was unknown; late, rejected or cancelled lied
        if earlier in ("late", "rejected", "cancelled"):
            self.counters["executed_after_outcome"] += 1
            log.warning("controller executed command %d after this host reported it %s", cid, earlier)

    def _on_ack(self, seq: int, m: Ack, now_ns: int) -> None:
        self.counters["acked"] += 1
        ctrl = self._control.pop(m.acked_seq, None)
        if ctrl is not None:
            if isinstance(ctrl.message, Arm):  # armed once a STATUS taken after the ARM confirms it
                self._confirming = True
                self._next_status_ns = now_ns
            return
        if m.result in (AckResult.CANCELLED, AckResult.UNKNOWN_ID):
            self._cancels.pop(m.command_id, None)
            if m.result == AckResult.CANCELLED:
                self._q.finish(m.command_id, "cancelled", detail="cancelled by the controller")
            return
        c = self._q.cmds.get(m.command_id)
        if c is None:
            return
        if c.state in (CommandState.IN_FLIGHT, CommandState.WAITING):
            self._q.set_state(m.command_id, c, CommandState.ACCEPTED)
        c.query = False
        if c.sent_ns > self._pause_started_ns:
            self._backoff_ns = 0
            self._window = min(self._window + 1, self.cfg.window)
        if not c.accepted_reported:
            c.accepted_reported = True
            self.counters["accepted"] += 1
            self._q.event(m.command_id, "accepted")

    def _on_nak(self, m: Nak, now_ns: int) -> None:
        if m.reason in (NakReason.BAD_CRC, NakReason.MALFORMED) and m.command_id == 0:
            self.counters["nak_other"] += 1
            self._burst.event(now_ns, "controller received a damaged frame")
            self._next_heartbeat_ns = now_ns  # it may have been a heartbeat: send one more now
            return  # the ack timeout resends whatever it was
        ctrl = self._control.pop(m.acked_seq, None)
        if ctrl is not None:
            log.error("controller refused %s: %s", type(ctrl.message).__name__, enum_name(NakReason, m.reason))
            return
        c = self._q.cmds.get(m.command_id)
        if c is None:  # a second answer to a finished command, or a NAK naming nothing this host sent
            self.counters["nak_unmatched"] += 1
            log.debug(
                "NAK %s for command %d / seq %d matches nothing outstanding",
                enum_name(NakReason, m.reason),
                m.command_id,
                m.acked_seq,
            )
            return
        if m.reason == NakReason.QUEUE_FULL:
            self.counters["nak_queue_full"] += 1
            if now_ns >= self._paused_until_ns and c.sent_ns >= self._pause_started_ns:
                # a new episode (not one more answer to frames sent before the pause): back off longer
                self._backoff_ns = min(max(self._backoff_ns * 2, self.cfg.backoff_min_ns), self.cfg.backoff_max_ns)
                self._pause_started_ns = now_ns
                self._paused_until_ns = now_ns + self._backoff_ns
                self._window = 1
                self.counters["backoffs"] += 1
            self._q.set_state(m.command_id, c, CommandState.WAITING)
            c.tries = 0
            c.not_before_ns = self._paused_until_ns
            return
        if m.reason == NakReason.NOT_ARMED:
            self._q.set_state(m.command_id, c, CommandState.WAITING)
            c.tries = 0
            self._rearm(now_ns)
            return
        if m.reason == NakReason.WRONG_EPOCH:  # computed in an epoch the controller has left: never resent
            self.counters["nak_wrong_epoch"] += 1
            self._q.finish(m.command_id, "lost", detail="controller NAK WRONG_EPOCH (its count was reset)")
            self._next_status_ns = now_ns  # learn the new epoch now
            return
        self.counters["nak_other"] += 1
        name = enum_name(NakReason, m.reason)
        if name.startswith("unknown"):
            self.counters["nak_unknown_reason"] += 1
            self._burst.event(now_ns, f"NAK with reason {m.reason}, not defined in protocol version {PROTOCOL_VERSION}")
            name = f"unknown NAK reason {m.reason}"
        self._q.finish(m.command_id, "late" if m.reason == NakReason.LATE else "rejected", detail=f"controller NAK {name}")
        if m.reason == NakReason.LATE:  # the belt only moves forward: whatever opens earlier is late too
            first = first_count(c.command)
            self._late_floor = first if self._late_floor is None else max(self._late_floor, first)

    def _on_fault(self, m: Fault, now_ns: int) -> None:
        self.counters["faults"] += 1
        code = FaultCode(m.fault_code) if m.fault_code in FaultCode._value2member_map_ else FaultCode.INTERNAL
        name = enum_name(FaultCode, m.fault_code)
        self.fault = code
        self._last_count = m.encoder_count
        if code == FaultCode.WATCHDOG:
            self.counters["watchdog_faults"] += 1
            log.warning("controller watchdog tripped (valves closed); re-arming and resending outstanding commands")
            self._rearm(now_ns)
            return
        log.error("controller fault %s: valves closed; commands refused until an operator re-arms", name)
        self.armed = False
        for cid in list(self._q.cmds):
            self._q.finish(cid, "rejected", detail=f"controller fault {name}")

    def _rearm(self, now_ns: int) -> None:
        """Re-arm: first a STATUS (boot id, epoch), then ARM, then a STATUS that confirms it."""
        if not self.arm_enabled or self._hello or self._confirming:
            return
        if any(isinstance(p.message, Arm) for p in self._control.values()):
            return
        self.armed = False
        self.counters["rearms"] += 1
        self._requeue_outstanding(now_ns)
        self._hello = True
        self._next_status_ns = now_ns

    # ------------------------------------------------------------ epochs, version

    def _on_status(self, m: Status, now_ns: int) -> None:
        if m.version != PROTOCOL_VERSION:
            self._refuse_version(m.version)
            return
        self.status = m
        self._observe(m.boot_id, m.epoch, m.encoder_count, now_ns)
        self._last_count = m.encoder_count
        mine = m.session_id == self.session_id and bool(m.flags & StatusFlags.ARMED)
        if self._hello:  # the STATUS before an ARM: the epoch is known, arm now
            self._hello = False
            self._send_control(Arm(self.session_id), now_ns)
        elif self._confirming:  # the STATUS after the ARM (same boot id, or _observe finished the old epoch)
            self._confirming = False
            if mine:
                self.armed = True
                self.fault = None
            else:
                self._rearm(now_ns)
        elif not mine and self.armed:
            log.warning("controller reports it is not armed for this session; re-arming")
            self._rearm(now_ns)

    def _observe(
        self, boot_id: int, epoch: int, count: int, now_ns: int, device_time_us: int | None = None, sent_ns: int | None = None
    ) -> None:
        change = self.epochs.observe(boot_id, epoch, count, now_ns, device_time_us, sent_ns)
        if change is not None:
            self._on_epoch_change(change, now_ns)

    def _on_epoch_change(self, change: EpochChange, now_ns: int) -> None:
        """Every command of the old epoch without an outcome is lost; the sync restarts in the new one."""
        self.counters["epoch_changes"] += 1
        finished = self._q.finish_all("lost", f"epoch change: {change.reason}")
        log.warning("%s: %d pending commands finished as lost; re-synchronising", change.reason, len(finished))
        self._cancels.clear()
        if not change.announced:  # the controller does not know: make sure it cannot fire them
            for c in finished:
                if c.tries:
                    self._write(Cancel(c.command.command_id))
        self._last_count = None
        self._late_floor = None
        self._pings.clear()
        self.sync.reset()
        self._resync_until_ns = now_ns + self.cfg.resync_hold_ns
        self._next_ping_ns = now_ns
        if change.restarted and self.armed:  # a started controller is disarmed
            self._rearm(now_ns)

    def _on_frame_error(self, r: FrameError, now_ns: int) -> None:
        self.counters["bad_frames"] += 1
        if r.kind == FrameErrorKind.UNKNOWN_TYPE:
            self.counters["unknown_types"] += 1
        if r.kind == FrameErrorKind.BAD_LENGTH and r.type_byte == MsgType.STATUS and r.size - 5 == STATUS_V1_PAYLOAD:
            self._refuse_version(1)
            return
        what = r.kind.value if r.type_byte is None else f"{r.kind.value} (type 0x{r.type_byte:02x})"
        self._burst.event(now_ns, what)

    def _refuse_version(self, version: int) -> None:
        if self.protocol_error is None:
            self.counters["protocol_errors"] += 1
            self.protocol_error = (
                f"the controller speaks protocol version {version}; this host needs {PROTOCOL_VERSION}: update its firmware"
            )
            log.error("%s", self.protocol_error)
        self.armed = False
        self._hello = self._confirming = False
        self._q.finish_all("rejected", self.protocol_error)
