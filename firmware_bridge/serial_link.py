"""Serial link to a valve controller: two threads around the sans-IO ``HostSession``.

The link's thread owns the session and the port: it opens the port
(``serial.serial_for_url``, so device paths and pyserial URLs both work), runs
the session's timers on the monotonic clock (heartbeats on their own schedule),
hands it submitted commands and received bytes, and writes what it asks for. It
never polls nor reads the port: on Linux a poll or read of a terminal waits for
the terminal's pending flip-buffer work, run by a kernel worker at normal
priority, which a loaded machine delays by hundreds of milliseconds whatever the
link's own priority (a USB-serial adapter has the same wait on the host's
receive side), while a write does not wait for it. A second thread
(``PortReader``) alone waits on and reads the port, stamps what arrives and
queues it; the link's thread feeds it to the session. The session is only ever
touched under a lock held for in-memory work, never across a system call. When
the port disappears the link closes it and retries with exponential backoff
(``reconnect_min_s`` doubling up to ``reconnect_max_s``); the session then
re-arms and resends.

Writes never block the thread. The port's file descriptor is non-blocking; what
the port does not take at once (the peer has not drained its buffer: a stall,
counted in ``write_stalls``) waits in a ``TxBacklog``, in order, and is written
again every ``TX_RETRY_S`` until the port takes it, while timers, heartbeats and
received bytes carry on. A stall is not a lost port: the port is closed and
reopened only when it is gone (an ``OSError`` such as ``EIO`` or ``ENODEV`` on
read or write, or the other end closed it) or when a stall has lasted
``stall_timeout_s`` with nothing heard from the controller meanwhile (a wedged
adapter). ``stats()`` counts the reopenings by reason.

Neither thread dies silently: any exception in a loop is caught at its top,
logged and counted (``thread_errors``); the port is closed as if lost and the
loop starts again (the link's after ``restart_delay_s``). Meanwhile ``health()``
says the link is down and why, and ``stats()["connected"]`` is 0, so the service
shows ``degraded``. Commands still outstanding when the link is closed are
finished ``lost``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import serial

from firmware_bridge.host_session import HostSession, SessionConfig
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import Fire, Pick, Status
from firmware_bridge.serial_port import PortLostError, check_stall, open_port, stall_left_s, write_backlog
from firmware_bridge.serial_reader import PortReader, WakePipe, name_os_thread
from firmware_bridge.sync import SyncEstimator
from firmware_bridge.tx_backlog import TxBacklog

log = logging.getLogger(__name__)

TX_RETRY_S = 0.002  # a stalled port is written again this often (the link never polls the port to learn when)


class SerialLink:
    """Host side of the serial protocol (implements ``firmware_bridge.link.ControllerLink``).

    Args:
        url: device path or pyserial URL, e.g. ``/dev/ttyACM0``.
        baudrate: line rate (ignored by USB CDC and pseudo-terminals).
        config: protocol timing.
        session_id: this host run's id; random when None.
        reconnect_min_s: first wait before reopening a lost port.
        reconnect_max_s: longest wait between reopening attempts.
        time_ns: host monotonic clock (wall time drives timeouts and heartbeats).
        arm: False for a monitor that never arms the controller nor feeds its watchdog.
        stall_timeout_s: a write stall this long with nothing received from the controller meanwhile
            is a lost port (closed and reopened); shorter stalls only wait.
    """

    def __init__(
        self,
        url: str,
        baudrate: int = 921600,
        config: SessionConfig | None = None,
        session_id: int | None = None,
        reconnect_min_s: float = 0.05,
        reconnect_max_s: float = 2.0,
        time_ns: Callable[[], int] = time.monotonic_ns,
        arm: bool = True,
        stall_timeout_s: float = 1.0,
    ) -> None:
        if not stall_timeout_s > 0:
            raise ValueError(f"SerialLink: stall_timeout_s={stall_timeout_s!r} must be > 0 (seconds; default 1.0)")
        self.url = url
        self.baudrate = baudrate
        sid = session_id if session_id is not None else random.getrandbits(32) or 1
        self.session = HostSession(config or SessionConfig(), sid, arm=arm)
        self.sync: SyncEstimator = self.session.sync
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._time_ns = time_ns
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._events: list[LinkEvent] = []
        # submissions are handed over without the lock: a caller submitting thousands of commands
        # in a loop must never starve the link thread (and so the heartbeat) of the lock
        self._inbox: deque[Fire | Pick | int] = deque()
        self._stop = threading.Event()
        self._wakeup = WakePipe()  # the link's thread waits on this pipe only (never on the port)
        self._wake = self._wakeup.wake
        self._thread: threading.Thread | None = None
        self._port: serial.SerialBase | None = None
        self._generation = 0  # openings of the port: what the reader read from a closed one is dropped
        self._reader = PortReader(f"serial-link-rx {url}", self._wake, time_ns)
        self.open_failures = 0
        self.opens = 0
        self.thread_errors = 0
        self.restart_delay_s = 0.1
        self._down_reason = ""  # why the link thread last restarted (cleared once ready again)
        self.stall_timeout_s = stall_timeout_s
        self._tx = TxBacklog()  # bytes the port has not taken yet (only the link thread touches it)
        self._last_rx = 0.0  # monotonic s of the last bytes received
        self.write_call_s_max = 0.0  # longest single os.write call (non-blocking: should stay far under 1 ms)
        self.lost_by_reason: dict[str, int] = {"io_error": 0, "peer_closed": 0, "stalled_silent": 0}

    # --------------------------------------------------------------- public

    def start(self) -> None:
        if self._thread is not None:
            return
        self._reader.start()
        self._thread = threading.Thread(target=self._run, name=f"serial-link {self.url}", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._wait_until(self.session.ready, timeout_s, give_up=lambda: self.session.protocol_error is not None)

    def submit(self, command: Fire | Pick) -> None:
        self._inbox.append(command)
        self._wake()

    def cancel(self, command_id: int) -> None:
        self._inbox.append(command_id)
        self._wake()

    def adopt(self, commands: Sequence[tuple[Fire | Pick, int]]) -> None:
        """Commands an earlier link of this host run left without an outcome: ask the controller about them first.

        Each is the command as it was sent (its epoch stamped) with the controller's boot id then
        (``HostSession.adopt``); call before submitting anything new.
        """
        with self._changed:
            now = self._time_ns()
            for command, boot_id in commands:
                self.session.adopt(command, boot_id, now)
            self._changed.notify_all()
        self._wake()

    def controller_epoch(self) -> tuple[int, int] | None:
        """The controller's ``(boot_id, epoch)`` as last read (None before the first STATUS)."""
        with self._lock:
            e = self.session.epochs
            return (e.boot_id, e.epoch) if e.boot_id is not None and e.epoch is not None else None

    def poll_events(self) -> list[LinkEvent]:
        with self._lock:
            self._collect()
            ev, self._events = self._events, []
            return ev

    def wait_idle(self, timeout_s: float) -> bool:
        return self._wait_until(lambda: not self._inbox and self.session.idle(), timeout_s)

    def fetch_reports(self) -> None:
        """Nothing to do: the controller pushes FIRED/PICKED as soon as a pulse ends."""

    def last_status(self) -> Status | None:
        with self._lock:
            return self.session.status

    def request_status(self, timeout_s: float = 1.0) -> Status | None:
        """Ask for a fresh STATUS now and wait for it."""
        with self._lock:
            before = self.session.status
            self.session._next_status_ns = 0
        self._wake()
        fresh = self._wait_until(lambda: self.session.status is not before, timeout_s)
        return self.session.status if fresh else None

    def ping(self, timeout_s: float = 1.0) -> bool:
        """Send a PING now and wait for its PONG (the result is in ``sync``)."""
        with self._lock:
            n0 = self.sync.count
            self.session._next_ping_ns = 0
        self._wake()
        return self._wait_until(lambda: self.sync.count != n0, timeout_s)

    def stats(self) -> dict[str, int]:
        with self._lock:
            s = dict(self.session.counters)
            s["outstanding"] = self.session.outstanding()
            s["connected"] = int(self.session.connected and self.session.protocol_error is None)
            s["port_opens"] = self.opens
            s["thread_errors"] = self.thread_errors + self._reader.errors
            s["write_stalls"] = self._tx.stalls
            s["write_stall_ms_total"] = round(self._tx.stall_s_total * 1e3)
            s["write_stall_ms_max"] = round(self._tx.stall_s_max * 1e3)
            s["write_call_us_max"] = round(self.write_call_s_max * 1e6)
            s["tx_backlog_bytes"] = len(self._tx)
            s["heartbeats_coalesced"] = self._tx.heartbeats_coalesced
            for why, n in self.lost_by_reason.items():
                s[f"reconnects_{why}"] = n
            s["epoch"] = self.session.epochs.epoch or 0
        s["healthy"] = int(self.health()[0])
        return s

    def health(self) -> tuple[bool, str]:
        """``(True, "")`` while the controller is connected and armed; else ``(False, why)``."""
        with self._lock:
            session = self.session
            if session.protocol_error is not None:
                return False, session.protocol_error
            if self._thread is None or not self._thread.is_alive() or not self._reader.alive():
                return False, "serial link thread not running"
            if self._down_reason:  # until a turn of the restarted loop completes with the controller ready
                return False, self._down_reason
            if session.ready():
                return True, ""
            if not session.connected:
                return False, f"controller port {self.url} lost, reconnecting"
            return False, "waiting for the controller to arm"

    def close(self, disarm: bool = True) -> None:
        """Disarm the controller (valves closed), stop the thread, close the port.

        Commands still outstanding get their outcome: ``cancelled`` when the controller acknowledged
        the DISARM (it dropped its queue: they never run), else ``lost``; commands submitted too late
        for the link's thread to take them are ``cancelled`` (never sent).
        """
        disarmed = False
        if self._thread is not None and disarm and self.session.arm_enabled:
            with self._lock:
                armed = self.session.armed
                self.session.disarm(self._time_ns())
            self._wake()
            deadline = time.monotonic() + 0.2
            with self._changed:
                while self.session._control and time.monotonic() < deadline:
                    self._changed.wait(0.01)
                disarmed = armed and not self.session._control
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._reader.stop(2.0)
        self._close_port()
        with self._lock:
            if disarmed:
                self.session.abandon("dropped by the DISARM at close", "cancelled")
            else:
                self.session.abandon("link closed before the controller reported it")
            while self._inbox:  # submitted while closing: the stopped thread never took them; never sent
                self._drain_inbox()
            self.session.abandon("link closed before it was sent", "cancelled")
            self._collect()
        self._wakeup.close()

    # -------------------------------------------------------------- private

    def _wait_until(self, done: Callable[[], bool], timeout_s: float, give_up: Callable[[], bool] = lambda: False) -> bool:
        """Wait up to ``timeout_s`` for ``done()`` (checked under the lock); False at once when ``give_up()``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0 or give_up():
                    return False
                self._changed.wait(min(left, 0.05))
            return True

    def _drain_inbox(self) -> None:
        """Hand queued submissions and cancels to the session (lock held)."""
        now = self._time_ns()
        for _ in range(min(len(self._inbox), 256)):  # in slices: timers run between them
            item = self._inbox.popleft()
            if isinstance(item, int):
                self.session.cancel(item, now)
            else:
                self.session.submit(item, now)

    def _collect(self) -> None:
        ev = self.session.take_events()
        if ev:
            self._events.extend(ev)

    def _open(self) -> bool:
        port: serial.SerialBase | None = None
        try:
            port = open_port(self.url, self.baudrate)  # non-blocking: writes go through the backlog
            self._reader.attach(port.fileno(), self._generation + 1)  # the reader reads its own duplicate
        except (serial.SerialException, OSError, ValueError) as e:
            self.open_failures += 1
            if self.open_failures == 1 or self.open_failures % 50 == 0:
                log.warning("cannot open controller port %s (%s); retrying with backoff", self.url, e)
            if port is not None:
                with contextlib.suppress(serial.SerialException, OSError):
                    port.close()
            return False
        self._port = port
        self._generation += 1
        self._last_rx = time.monotonic()
        self.opens += 1
        if self.opens > 1:
            log.info("controller port %s reopened", self.url)
        with self._changed:
            self.session.connection_made(self._time_ns())
            self._changed.notify_all()
        return True

    def _close_port(self) -> None:
        self._reader.detach()
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()

    def _lost(self, why: str, reason: str = "io_error") -> None:
        log.warning("controller port %s lost (%s); reconnecting", self.url, why)
        self._close_port()
        self._tx.clear(time.monotonic())  # the session resends what is outstanding once the port is back
        self.lost_by_reason[reason] = self.lost_by_reason.get(reason, 0) + 1
        with self._changed:
            self.session.connection_lost(self._time_ns())
            self._collect()
            self._changed.notify_all()

    def _run(self) -> None:
        """The link's thread: the session and the writes, restarted after any exception (never a silent death)."""
        name_os_thread("serial-link-tx")
        while not self._stop.is_set():
            try:
                self._loop()
                return
            except Exception as e:  # any bug or surprise: log, count, report down, start the loop again
                self.thread_errors += 1
                self._down_reason = f"serial link thread failed ({type(e).__name__}: {e}); restarting it"
                if self.thread_errors <= 3 or self.thread_errors % 100 == 0:  # a failure that repeats is not a log flood
                    log.exception(
                        "serial link thread failed (%d so far); restarting its loop in %.1f s",
                        self.thread_errors,
                        self.restart_delay_s,
                    )
                try:
                    self._lost("link thread restarting")
                except Exception:
                    log.exception("while closing the port after a link thread failure")
                    self._port = None
            self._stop.wait(self.restart_delay_s)

    def _loop(self) -> None:
        backoff = self.reconnect_min_s
        next_open = 0.0
        while not self._stop.is_set():
            if self._port is None:
                now = time.monotonic()
                if now >= next_open and not self._reader.holding():  # reopen once the reader let go of the old port
                    if self._open():
                        backoff = self.reconnect_min_s
                    else:
                        next_open = now + backoff
                        backoff = min(backoff * 2, self.reconnect_max_s)
                if self._port is None:
                    with self._changed:
                        self._drain_inbox()
                        self._feed_received()  # what the reader read before the port went: dropped
                        self.session.poll(self._time_ns())  # expires what can no longer be sent
                        self._collect()
                        self._changed.notify_all()
                    self._wakeup.wait(max(0.001, min(next_open - time.monotonic(), 0.05)))
                    continue
            try:
                self._step()
            except PortLostError as e:
                self._lost(str(e), e.reason)
                next_open = time.monotonic() + self.reconnect_min_s
            except (serial.SerialException, OSError) as e:
                self._lost(str(e))
                next_open = time.monotonic() + self.reconnect_min_s

    def _feed_received(self) -> PortLostError | None:
        """Hand what the reader read from the open port to the session (lock held); the port's loss if it came.

        Items of a port closed since (an older generation, or none open) are dropped.
        """
        received = self._reader.received
        for _ in range(len(received)):
            item = received.popleft()
            if self._port is None or item.generation != self._generation:
                continue
            if item.lost is not None:
                return item.lost
            self._last_rx = max(self._last_rx, item.t_s)
            self.session.receive(item.data, item.t_ns)
        return None

    def _step(self) -> None:
        """One turn: submissions and received bytes to the session, its timers, its bytes out, then wait.

        The only system calls on the port are non-blocking writes: the wait is on the wake-up pipe,
        which submissions, the reader and the session's next deadline end.
        """
        port = self._port
        assert port is not None
        out = b""
        with self._changed:
            self._drain_inbox()
            lost = self._feed_received()
            now = self._time_ns()
            if lost is None:
                out = self.session.poll(now)
                if self._down_reason and self.session.ready():
                    log.info("serial link to %s ready again after a thread restart", self.url)
                    self._down_reason = ""
            deadline = self.session.next_deadline_ns(now)
            self._collect()
            self._changed.notify_all()
        if lost is not None:
            raise lost
        if out:
            self._tx.add(out)
        if self._tx:
            self._write_backlog(port.fileno())
        check_stall(self._tx, self._last_rx, self.stall_timeout_s, time.monotonic())
        busy = self._inbox or self._reader.received
        timeout = 0.0 if busy else max(0.0, (deadline - self._time_ns()) / 1e9)
        if self._tx:  # stalled: try again soon (and no later than the stall becomes a lost port)
            timeout = min(timeout, TX_RETRY_S, stall_left_s(self._tx, self._last_rx, self.stall_timeout_s, time.monotonic()))
        self._wakeup.wait(timeout)

    def _write_backlog(self, fd: int) -> None:
        self.write_call_s_max = max(self.write_call_s_max, write_backlog(self._tx, fd))
