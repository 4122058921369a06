"""Host side of the serial protocol as a sans-IO state machine.

Feed it received bytes and the time; ask it what to write and when to call
again. It owns sequence numbers, ACK matching, bounded retransmission,
backoff on QUEUE_FULL, heartbeats, ARM after (re)connection and after a
watchdog fault, PING/PONG sync and STATUS polling. It never touches a port or
a clock, so every timing rule is unit-tested with made-up times; the threaded
``SerialLink`` only moves bytes.

Rules that keep commands safe (PROTOCOL.md, section 5):

* A command is never *sent* once its open position is known to have passed
  (the last count the controller reported, or, with ``predict_late``, the count
  extrapolated from the sync estimate plus a guard). The controller refuses late
  commands itself in any case, so nothing is ever fired late.
* A command without ACK is retransmitted at most ``max_retries`` times, under
  the same command id (the controller treats it as a duplicate if it had it),
  whatever its position: the first transmission may have reached the controller
  (its ACK lost or slow), so only the controller's answer (DUPLICATE, DONE with
  the report again, LATE) may say whether it runs. The host finishes a command
  ``late`` itself only if it never sent it. After the retries it is reported
  ``rejected`` and a CANCEL is sent; an execution report that still comes for a
  command finished late, rejected or cancelled is counted
  (``executed_after_outcome``) and logged.
* After a reconnection or a watchdog fault the host re-arms and resends every
  accepted command that has not executed; the controller answers DUPLICATE,
  DONE (with the report again) or queues it anew. A link restarted within the
  same host run (same session id) does the same with the commands the previous
  link left without an outcome (:meth:`HostSession.adopt`), after checking that
  the controller's boot id and epoch are still theirs.
* Positions belong to an encoder epoch (section 4.6). The host asks for a STATUS
  before every ARM and confirms the ARM with another, so it always knows the
  controller's boot id and epoch before a command goes out; each command carries
  its epoch. A new boot id or epoch (STATUS, PONG, EPOCH), or a count that moves
  backwards or faster than physics, finishes every pending command as ``lost``
  (never resent), forgets the encoder sync, and sending resumes in the new epoch.
* A controller of another protocol version is refused with a clear error, and
  unknown codes (NAK reasons, faults, message types) are counted, never raised.
"""

from __future__ import annotations

import dataclasses
import logging

from firmware_bridge.codec import FrameDecoder, FrameError, encode_frame
from firmware_bridge.epochs import EpochTracker
from firmware_bridge.link import EventStatus, LinkEvent
from firmware_bridge.messages import (
    EPOCH_UNSET,
    Cancel,
    Disarm,
    FaultCode,
    Fire,
    Heartbeat,
    Message,
    Pick,
    Ping,
    Status,
    StatusRequest,
)
from firmware_bridge.ratelimit import BurstLog
from firmware_bridge.serial_commands import (
    COUNTERS,
    MS,
    CommandQueue,
    CommandState,
    PendingFrame,
    QueuedCommand,
    SessionConfig,
    first_count,
)
from firmware_bridge.serial_replies import ReplyHandler
from firmware_bridge.sync import SyncEstimator

__all__ = ["HostSession", "SessionConfig"]

log = logging.getLogger(__name__)


class HostSession(ReplyHandler):
    """The host protocol machine for one controller.

    Args:
        config: timing.
        session_id: identifies this host run to the controller (a new id makes it forget old command ids).
        arm: False for a monitor (``sorter hw status``): never ARM, never send heartbeats, so another
            host's session and watchdog are left alone; commands cannot be sent.
    """

    def __init__(self, config: SessionConfig, session_id: int, arm: bool = True) -> None:
        self.cfg = config
        self.session_id = session_id & 0xFFFFFFFF
        self.arm_enabled = arm
        self.sync = SyncEstimator()
        self.decoder = FrameDecoder()
        self.connected = False
        self.armed = False
        self.status: Status | None = None
        self.fault: FaultCode | None = None
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._q = CommandQueue(self.counters, on_finish=self._forget_cancel)
        self._out = bytearray()
        self._seq = 0
        self._control: dict[int, PendingFrame] = {}  # seq -> ARM/DISARM awaiting ACK
        self._cancels: dict[int, PendingFrame] = {}  # command id -> CANCEL awaiting ACK
        self._pings: dict[int, int] = {}  # host_time_ns -> sent
        self._hb_counter = 0
        self._next_heartbeat_ns = 0
        self._last_heartbeat_ns: int | None = None  # when the last HEARTBEAT was written (None: none since connecting)
        self._next_ping_ns = 0
        self._next_status_ns = 0
        self._backoff_ns = 0
        self._paused_until_ns = 0
        self._pause_started_ns = -1
        self._window = config.window
        self._last_count: int | None = None
        self._late_floor: int | None = None  # a position the controller called late
        self._burst = BurstLog(log, "received frames with errors")
        self.epochs = EpochTracker(config.max_counts_per_s, config.backward_tolerance_counts)
        self.protocol_error: str | None = None  # set once: the controller speaks another protocol version
        self._hello = False  # waiting for the STATUS that precedes an ARM
        self._confirming = False  # ARM acknowledged: waiting for the STATUS that confirms it
        self._down_since_ns: int | None = None  # port lost at (None while connected)
        self._resync_until_ns: int | None = None  # after an epoch change: not ready, submissions lost, until then
        self._adopted: dict[int, int] = {}  # adopted command id -> the controller's boot id it was sent under

    # ----------------------------------------------------------------- inputs

    def connection_made(self, now_ns: int) -> None:
        """The port is open: ask for a STATUS (version, boot id, epoch), arm, then (re)send what is outstanding."""
        if self.connected:
            return
        self.connected = True
        self.armed = False
        self._down_since_ns = None
        self.decoder.reset()
        self._control.clear()
        self._pings.clear()
        self._hello = self.arm_enabled  # STATUS first (version, boot id, epoch), then ARM
        self._confirming = False
        self._next_heartbeat_ns = now_ns
        self._last_heartbeat_ns = None
        self._next_ping_ns = now_ns
        self._next_status_ns = now_ns

    def connection_lost(self, now_ns: int) -> None:
        """The port went away: nothing in flight can be answered any more."""
        if not self.connected:
            return
        self.connected = False
        self.armed = False
        self._down_since_ns = now_ns
        self.counters["reconnects"] += 1
        self._out.clear()
        self._requeue_outstanding(now_ns)

    def submit(self, command: Fire | Pick, now_ns: int) -> None:
        """Queue a command (duplicates of a known id are ignored), stamped with the current epoch.

        A command submitted while the link refuses the controller, or just after an epoch change
        (its positions may come from the old odometer), gets its outcome at once.
        """
        if command.epoch == EPOCH_UNSET and self.epochs.epoch is not None:
            command = dataclasses.replace(command, epoch=self.epochs.epoch)
        self._q.add(command)
        if self.protocol_error is not None:
            self._q.finish(command.command_id, "rejected", detail=self.protocol_error)
        elif self._resync_until_ns is not None:
            self._q.finish(command.command_id, "lost", detail="submitted while re-synchronising after an epoch change")

    def adopt(self, command: Fire | Pick, boot_id: int, now_ns: int) -> None:
        """A command an earlier link of this host run sent and left without an outcome: ask the controller.

        ``command`` is as it was sent (its epoch stamped), ``boot_id`` the controller's boot id then. Once
        armed (the controller's boot id and epoch known), a command of another boot id or epoch is finished
        ``lost``; every other one is resent under its id as a query, whatever its position (PROTOCOL.md 5,
        "Link restarted"): the controller answers DONE and its report again (it ran), DUPLICATE (still queued:
        tracked on), QUEUED (it had dropped it or never had it, and it is still ahead), CANCELLED, or LATE (it
        never ran and its position has passed). Call before submitting anything new.
        """
        cid = command.command_id
        if cid in self._q.cmds:
            return
        self._q.add(command)
        c = self._q.cmds.get(cid)
        if c is None:
            return
        self.counters["adopted"] += 1
        if command.epoch == EPOCH_UNSET:  # cannot be matched with what the controller holds
            self._q.finish(cid, "lost", detail="left by a previous link without an epoch stamp")
            return
        c.query = True
        self._adopted[cid] = boot_id

    def cancel(self, command_id: int, now_ns: int) -> None:
        """Cancel a command: locally if not sent yet, else by a CANCEL frame."""
        c = self._q.cmds.get(command_id)
        if c is None:
            return
        if c.state == CommandState.WAITING and c.query:  # the controller may hold it: CANCEL right after the query
            c.cancel_wanted = True
            return
        if c.state == CommandState.WAITING and c.tries == 0:
            self._q.finish(command_id, "cancelled", detail="cancelled before sending")
            return
        if command_id not in self._cancels and self.armed:
            self._cancels[command_id] = PendingFrame(Cancel(command_id), now_ns)
            self._write(Cancel(command_id))

    def disarm(self, now_ns: int) -> None:
        """Close all valves and stop (before closing the link)."""
        if self.connected:
            self._send_control(Disarm(), now_ns)
        self.armed = False

    def receive(self, data: bytes, now_ns: int) -> None:
        """Bytes from the port."""
        for r in self.decoder.feed(data):
            if isinstance(r, FrameError):
                self._on_frame_error(r, now_ns)
            else:
                self._handle(r, now_ns)

    # ---------------------------------------------------------------- outputs

    def abandon(self, detail: str, status: EventStatus = "lost") -> None:
        """Finish every outstanding command as ``lost`` (the link is closed or given up), or ``cancelled``
        when the controller confirmed that it dropped them (a DISARM acknowledged)."""
        self._q.finish_all(status, detail)

    def poll(self, now_ns: int) -> bytes:
        """Run timers and return the bytes to write now."""
        if self.protocol_error is not None:
            self._out.clear()
            return b""
        if self._resync_until_ns is not None and now_ns >= self._resync_until_ns:
            self._resync_until_ns = None
            log.info("re-synchronised to controller epoch %s; sending resumes", self.epochs.epoch)
        if self.connected:
            self._timers(now_ns)
            if self.armed:
                self._send_commands(now_ns)
        else:
            self._q.expire(self._floor())
            down = self._down_since_ns
            if down is not None and now_ns - down >= self.cfg.give_up_ns and self._q.cmds:
                log.error(
                    "controller port lost for %.1f s: %d outstanding commands finished as lost",
                    (now_ns - down) / 1e9,
                    len(self._q.cmds),
                )
                self.abandon(f"controller link down for over {self.cfg.give_up_ns / 1e9:g} s")
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_deadline_ns(self, now_ns: int) -> int:
        """Latest time at which ``poll`` must be called again."""
        t = now_ns + 50 * MS
        if self._q.first_expirable(self._floor()):
            return now_ns  # more expirations to do
        top = self._q.top()
        if self._resync_until_ns is not None:
            t = min(t, self._resync_until_ns)
        if self.connected:
            t = min(t, self._next_heartbeat_ns, self._next_ping_ns, self._next_status_ns)
            for cid in self._q.in_flight:
                t = min(t, self._q.cmds[cid].sent_ns + self.cfg.ack_timeout_ns)
            if self._q.queries:
                t = now_ns
            elif top is not None:
                t = min(t, max(top.not_before_ns, self._paused_until_ns))
            for p in (*self._control.values(), *self._cancels.values()):
                t = min(t, p.sent_ns + self.cfg.ack_timeout_ns)
        return max(t, now_ns)

    def take_events(self) -> list[LinkEvent]:
        """Return and clear the events."""
        return self._q.take_events()

    def idle(self) -> bool:
        """True when every submitted command has been answered (none waiting or in flight)."""
        return not self._q.waiting and not self._q.in_flight

    def outstanding(self) -> int:
        """Commands not yet final (waiting, in flight or accepted)."""
        return len(self._q.cmds)

    # --------------------------------------------------------------- internals

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        if self._seq == 0xFFFF:  # reserved for "unknown" in NAKs
            self._seq = 0
        return self._seq

    def _write(self, message: Message) -> int:
        seq = self._next_seq()
        self._out += encode_frame(message, seq)
        return seq

    def _send_control(self, message: Message, now_ns: int) -> None:
        seq = self._write(message)
        self._control[seq] = PendingFrame(message, now_ns)

    def _forget_cancel(self, cid: int) -> None:
        self._cancels.pop(cid, None)

    def _known_passed(self, c: Fire | Pick, now_ns: int) -> bool:
        """True when the first position has passed: certainly (the last count seen), or probably
        (extrapolated from the sync estimate) with ``predict_late``. Asked only of a command never sent."""
        first = first_count(c)
        if self._last_count is not None and first <= self._last_count:
            return True
        if self.cfg.predict_late:
            best = self.sync.best()
            est = self.sync.count_at(now_ns + (best.rtt_ns // 2 if best else 0) + self.cfg.late_guard_ns)
            if est is not None and first <= est:
                return True
        return False

    def _timers(self, now_ns: int) -> None:
        cfg = self.cfg
        if self.arm_enabled and now_ns >= self._next_heartbeat_ns:
            self._hb_counter = (self._hb_counter + 1) & 0xFFFFFFFF
            self._write(Heartbeat(self._hb_counter))
            self.counters["heartbeats"] += 1
            if self._last_heartbeat_ns is not None:  # the host's own view of feeding the watchdog on time
                gap_ns = now_ns - self._last_heartbeat_ns
                self.counters["heartbeat_gap_ms_max"] = max(self.counters["heartbeat_gap_ms_max"], gap_ns // MS)
                self.counters["heartbeats_late"] += int(gap_ns > 2 * cfg.heartbeat_ns)
            self._last_heartbeat_ns = now_ns
            self._next_heartbeat_ns = now_ns + cfg.heartbeat_ns
        if now_ns >= self._next_ping_ns:
            self._write(Ping(now_ns))
            self._pings[now_ns] = now_ns
            if len(self._pings) > 16:
                self._pings.pop(next(iter(self._pings)))
            self._next_ping_ns = now_ns + cfg.ping_ns
        if now_ns >= self._next_status_ns:
            self._write(StatusRequest())
            waiting = self._hello or self._confirming
            self._next_status_ns = now_ns + (cfg.hello_retry_ns if waiting else cfg.status_ns)
        for seq, p in list(self._control.items()):
            if now_ns - p.sent_ns >= cfg.ack_timeout_ns:
                del self._control[seq]
                new_seq = self._write(p.message)
                self._control[new_seq] = PendingFrame(p.message, now_ns, p.tries + 1)
        for cid, p in list(self._cancels.items()):
            if now_ns - p.sent_ns >= cfg.ack_timeout_ns:
                if p.tries > cfg.max_retries:
                    del self._cancels[cid]
                    continue
                self._write(p.message)
                self._cancels[cid] = PendingFrame(p.message, now_ns, p.tries + 1)
        for cid in list(self._q.in_flight):
            c = self._q.cmds[cid]
            if now_ns - c.sent_ns < cfg.ack_timeout_ns:
                continue
            if c.tries > cfg.max_retries:
                self.counters["no_answer"] += 1
                self._q.finish(cid, "rejected", detail=f"no ACK after {c.tries} transmissions")
                self._cancels[cid] = PendingFrame(Cancel(cid), now_ns)
                self._write(Cancel(cid))
            else:  # resent under its id: the controller may have it (the ACK was lost or slow), so its answer decides
                self._q.set_state(cid, c, CommandState.WAITING)
                c.not_before_ns = 0
                c.query = True
        if self._last_count is not None:
            self._q.query_overdue(self._last_count, now_ns, 2 * self.cfg.ack_timeout_ns, self.cfg.max_retries)
        self._q.expire(self._floor())

    def _floor(self) -> int:
        """Positions at or below this have certainly passed (last count seen, or a position refused late)."""
        known = [v for v in (self._last_count, self._late_floor) if v is not None]
        return max(known) if known else -(1 << 63)

    def _send_commands(self, now_ns: int) -> None:
        if self._adopted:
            self._check_adopted()
        if now_ns < self._paused_until_ns:
            return
        # after a QUEUE_FULL the window restarts at one command and grows by one per acceptance
        window = min(self._window, self.cfg.window)
        while self._q.queries and len(self._q.in_flight) < window:
            cid = self._q.queries.pop(0)
            c = self._q.cmds.get(cid)
            if c is not None and c.state == CommandState.WAITING:
                self._send(cid, c, now_ns)
        while len(self._q.in_flight) < window:
            c = self._q.top()
            if c is None or now_ns < c.not_before_ns:
                return
            cid = self._q.pop_top()
            # only a command never sent is late here; one sent may be queued or blowing at the controller, which
            # answers its resend DUPLICATE, DONE (and the report again) or LATE
            if c.tries == 0 and not c.query and self._known_passed(c.command, now_ns):
                self.counters["late_local"] += 1
                self._q.finish(cid, "late", detail="position passed before it could be sent")
                continue
            self._send(cid, c, now_ns)

    def _send(self, cid: int, c: QueuedCommand, now_ns: int) -> None:
        if c.command.epoch == EPOCH_UNSET and self.epochs.epoch is not None:  # submitted before the first STATUS
            c.command = dataclasses.replace(c.command, epoch=self.epochs.epoch)
        self._q.set_state(cid, c, CommandState.IN_FLIGHT)
        c.sent_ns = now_ns
        if c.tries > 0 and not c.accepted_reported:
            self.counters["retransmits"] += 1
        c.tries += 1
        self.counters["sent"] += 1
        self._write(c.command)
        if c.cancel_wanted and cid not in self._cancels:  # a cancel asked while it was a query: now it is behind it
            self._cancels[cid] = PendingFrame(Cancel(cid), now_ns)
            self._write(Cancel(cid))

    def _check_adopted(self) -> None:
        """Armed, so the controller's boot id and epoch are known: adopted commands of others are lost."""
        boot, epoch = self.epochs.boot_id, self.epochs.epoch
        for cid, sent_boot in self._adopted.items():
            c = self._q.cmds.get(cid)
            if c is None:
                continue
            if sent_boot != boot:
                self._q.finish(cid, "lost", detail=f"controller restarted since it was sent (boot id 0x{sent_boot:08x})")
            elif c.command.epoch != epoch:
                self._q.finish(cid, "lost", detail=f"controller epoch {c.command.epoch} ended since it was sent")
        self._adopted.clear()

    def _requeue_outstanding(self, now_ns: int) -> None:
        """After a reconnect or a fault: everything not executed must be (re)sent."""
        self._q.requeue_all()
        self._cancels.clear()

    def ready(self) -> bool:
        """Connected, and armed unless this is a monitor (which waits for the controller's first STATUS)."""
        if self.protocol_error is not None or not self.connected or self._resync_until_ns is not None:
            return False
        return self.armed if self.arm_enabled else self.epochs.known()
