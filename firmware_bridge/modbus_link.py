"""Modbus link to a PLC (TCP or RTU): one thread performing the transactions of a sans-IO ``ModbusSession``.

The protocol (arming, heartbeat, command writes, busy back-off, cancels, polls,
reconnects, outcomes) lives in :mod:`firmware_bridge.modbus_session`; this thread
asks it what to do, performs that one transaction with a short timeout through
:class:`firmware_bridge.modbus_io.RegisterClient`, and reports the result. Between
transactions it sleeps until the session's next deadline or until a submission,
cancel or poll request wakes it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from firmware_bridge import registers as rmap
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import Fire, Pick, Status
from firmware_bridge.modbus_actions import (
    Connect,
    ModbusLinkConfig,
    ReadRegisters,
    Transaction,
    Wait,
    WriteReadRegisters,
    WriteRegister,
    WriteRegisters,
)
from firmware_bridge.modbus_io import ModbusExceptionError, ModbusLinkError, RegisterClient, Transport
from firmware_bridge.modbus_session import ModbusSession
from firmware_bridge.sync import SyncEstimator

__all__ = ["LinkHealth", "ModbusLink", "ModbusLinkConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LinkHealth:
    """Whether the link is up, and if not, why (the service shows ``degraded`` with the reason).

    Attributes:
        up: connected, armed (unless a monitor), and the last cycle went through without a fault.
        reason: why it is not up ("" when up).
        thread_alive: the link thread is running (it restarts itself after any error).
    """

    up: bool
    reason: str
    thread_alive: bool


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
        self.client = RegisterClient(transport, host, port, serial_url, baudrate, unit_id, timeout_ms / 1000.0)
        sid = (session_id if session_id is not None else random.getrandbits(32) or 1) & 0xFFFFFFFF
        self.session = ModbusSession(config or ModbusLinkConfig(), sid, arm=arm, where=self.client.where)
        self.cfg = self.session.cfg
        self.session_id = self.session.session_id
        self._time_ns = time_ns
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # submissions and cancels are handed over without the lock: a caller submitting thousands of commands
        # in a loop must never starve the link thread (and so the heartbeat) of the lock
        self._inbox: deque[Fire | Pick | int] = deque()
        self._kick = threading.Event()
        self._events: list[LinkEvent] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def arm_enabled(self) -> bool:
        """False for a monitor (never arms, no heartbeat); setting it False makes a hung host (tests)."""
        return self.session.arm_enabled

    @arm_enabled.setter
    def arm_enabled(self, value: bool) -> None:
        self.session.arm_enabled = value

    @property
    def counters(self) -> dict[str, int]:
        return self.session.counters

    @property
    def sync(self) -> SyncEstimator:
        """The odometer sync (a fresh one after every epoch change)."""
        return self.session.sync

    @sync.setter
    def sync(self, value: SyncEstimator) -> None:
        self.session.sync = value

    # ---------------------------------------------------------------- public

    def start(self) -> None:
        if self._thread is None:
            self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"modbus-link {self.client.where}", daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        """Restart the link thread if it has ended without being stopped (it should never: see ``_run``)."""
        t = self._thread
        if t is not None and not t.is_alive() and not self._stop.is_set():
            self.counters["thread_restarts"] = self.counters.get("thread_restarts", 0) + 1
            log.error("Modbus link thread to %s had ended; restarted", self.client.where)
            self._start_thread()

    def health(self) -> LinkHealth:
        """Up, or down with the reason (connection lost, exception answers, epoch change, another map version)."""
        self._supervise()
        with self._lock:
            s = self.session
            alive = self._thread is not None and self._thread.is_alive()
            now = self._time_ns()
            if s.up(now) and alive:
                return LinkHealth(True, "", alive)
            reason = s.health_reason(now)
            return LinkHealth(False, reason if alive else f"link thread not running ({reason})", alive)

    def wait_ready(self, timeout_s: float) -> bool:
        return self._wait_until(self.session.ready, timeout_s)

    def submit(self, command: Fire | Pick) -> None:
        self._inbox.append(command)
        self._kick.set()
        self._supervise()

    def cancel(self, command_id: int) -> None:
        self._inbox.append(command_id)
        self._kick.set()

    def adopt(self, commands: Sequence[tuple[Fire | Pick, int]]) -> None:
        """Commands an earlier link of this host run left without an outcome: ask the PLC about them first.

        Each is the command as it was written (its epoch stamped) with the PLC's boot id then
        (``ModbusSession.adopt``); call before submitting anything new.
        """
        with self._changed:
            now = self._time_ns()
            for command, boot_id in commands:
                self.session.adopt(command, boot_id, now)
            self._changed.notify_all()
        self._kick.set()

    def controller_epoch(self) -> tuple[int, int] | None:
        """The PLC's ``(boot_id, epoch)`` as last polled (None before the first poll)."""
        with self._lock:
            boot, epoch = self.session.boot_id, self.session.epoch
            return (boot, epoch) if boot is not None and epoch is not None else None

    def poll_events(self) -> list[LinkEvent]:
        with self._lock:
            self._collect()
            ev, self._events = self._events, []
            return ev

    def wait_idle(self, timeout_s: float) -> bool:
        return self._wait_until(lambda: not self._inbox and not self.session.busy(), timeout_s)

    def fetch_reports(self) -> None:
        """Poll the PLC now instead of at the next poll period (the caller knows something executed)."""
        with self._lock:
            if self.session.poll_requested():
                return
            self.session.poll_now(self._time_ns())
        self._kick.set()

    def last_status(self) -> Status | None:
        with self._lock:
            return self.session.status

    def last_header(self) -> rmap.Header | None:
        with self._lock:
            return self.session.header

    def request_status(self, timeout_s: float = 1.0) -> Status | None:
        """Poll now and return the fresh status."""
        with self._changed:
            n0 = self.counters["polls"]
            self.session.poll_now(self._time_ns())
        self._kick.set()
        if not self._wait_until(lambda: self.counters["polls"] != n0, timeout_s):
            return None
        return self.last_status()

    def ping(self, timeout_s: float = 1.0) -> bool:
        """Probe the odometer now (the result is in ``sync``)."""
        sync0 = self.sync
        n0 = sync0.count
        self.request_status(timeout_s)
        return self.sync is not sync0 or self.sync.count > n0  # (a new sync after an epoch change has a probe)

    def stats(self) -> dict[str, int]:
        """Counters, plus ``outstanding``, ``connected`` and ``up`` (0 while degraded: see :meth:`health`)."""
        up = self.health().up
        with self._lock:
            s = dict(self.counters)
            s["outstanding"] = self.session.outstanding()
            s["connected"] = int(self.session.connected)
            s["up"] = int(up)
            return s

    def close(self, disarm: bool = True) -> None:
        if self._thread is not None and disarm and self.arm_enabled:
            with self._changed:
                self.session.request_disarm(self._time_ns())
            self._kick.set()
            self._wait_until(lambda: not (self.session.disarm_requested and self.session.connected), 0.3, poll_s=0.01)
        self._stop.set()
        self._kick.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.client.close()

    # --------------------------------------------------------------- private

    def _wait_until(self, done: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, poll_s))
            return True

    def _collect(self) -> None:
        ev = self.session.take_events()
        if ev:
            self._events.extend(ev)

    def _feed(self, now: int) -> None:
        """Hand the submissions and cancels received since the last step to the session (lock held)."""
        while self._inbox:
            item = self._inbox.popleft()
            if isinstance(item, int):
                self.session.cancel(item, now)
            else:
                self.session.submit(item, now)

    def _perform(self, tx: Transaction) -> list[int]:
        c = self.client
        if isinstance(tx, ReadRegisters):
            return c.read(tx.address, tx.count)
        if isinstance(tx, WriteRegister):
            c.write_one(tx.address, tx.value)
        elif isinstance(tx, WriteRegisters):
            c.write(tx.address, tx.values)
        else:
            assert isinstance(tx, WriteReadRegisters)
            return c.write_read(tx.write_address, tx.values, tx.read_address, tx.read_count)
        return []

    def _run(self) -> None:
        """The link thread: any error is caught here, counted, reported as the link being down, and survived."""
        while not self._stop.is_set():
            try:
                self._loop()
            except Exception as e:
                why = f"link thread error: {type(e).__name__}: {e}"
                log.exception("Modbus link to %s: %s; reconnecting", self.client.where, why)
                with self._changed:
                    self.session.reset(why, self._time_ns())
                    self._collect()
                    self._changed.notify_all()
                self.client.close()
                self._stop.wait(0.01)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._changed:
                now = self._time_ns()
                self._feed(now)
                action = self.session.next_action(now)
                self._collect()
                self._changed.notify_all()
            if isinstance(action, Wait):
                delay_s = (action.until_ns - self._time_ns()) / 1e9
                if delay_s > 0:
                    self._kick.wait(delay_s)
                self._kick.clear()
                continue
            if isinstance(action, Connect):
                ok = self.client.connect()
                with self._changed:
                    self.session.connect_result(ok, self._time_ns())
                    self._changed.notify_all()
                continue
            t_sent = self._time_ns()
            try:
                regs = self._perform(action)
            except ModbusExceptionError as e:
                with self._changed:
                    self.session.refused(e.code, self._time_ns())
                    self._collect()
                    self._changed.notify_all()
            except ModbusLinkError as e:
                with self._changed:
                    self.session.no_answer(str(e), self._time_ns())
                    self._changed.notify_all()
            else:
                with self._changed:
                    self.session.answered(regs, t_sent, self._time_ns())
                    self._collect()
                    self._changed.notify_all()
