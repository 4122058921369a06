"""A controller link run in its own process, supervised: ``ProcessLink`` implements ``ControllerLink``.

Heartbeats and command I/O must not wait for the vision work to give up the
interpreter, so the real link (serial or Modbus, built by the one opener,
``sorter.actuate.links``) runs in a child process (:mod:`sorter.actuate.link_child`)
at raised scheduling priority where allowed. The line's side is a thin mirror:
submissions and cancels go down a pipe; events, the controller's status, the
odometer probes (into this side's ``sync``) and the counters come back.

A supervisor thread watches the child. When it dies for any reason (killed,
crashed, its link thread raised), the death is counted, the health listener hears
``process died (...), restarting`` at once, and a new child is started after a
backoff (:class:`~sorter.actuate.link_ledger.Backoff`). Health is clear again when
the new child's link is connected and armed.

A death does not decide the outcome of the commands it interrupted: the
controller knows it. Every child arms the controller with the same session id (one
per ``ProcessLink``), so the controller keeps its record of the command ids across
the restart (PROTOCOL.md 4.1), and the parent stamps every command with the
controller's epoch and remembers its boot id (both reported by the child). The new
child is handed every command without an outcome first, and asks the controller
about each (PROTOCOL.md 5 and 6.6, "link restarted"): executed (with the counts it
fired at), still queued (tracked on), dropped and now past (``late``: it never ran),
cancelled; a command of another boot id or epoch is ``lost``, as is one sent before
the controller's epoch was known. Cancels asked for meanwhile are forwarded after
the hand-over. Commands submitted while no child runs are finished as ``lost`` at
once: they are never queued for a controller that may come back too late.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import multiprocessing
import random
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait as wait_any
from typing import TYPE_CHECKING, Any

from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import EPOCH_UNSET, Fire, Pick, Status
from firmware_bridge.sync import SyncEstimator
from sorter.actuate import link_child
from sorter.actuate.link_ledger import LOST, Backoff, Carried, CommandLedger, lost_event

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from sorter.config import ActuatorConfig

log = logging.getLogger(__name__)

HealthListener = Callable[[str | None], None]

#: Counters of the child's link that are levels, not running totals (not summed over restarts).
GAUGES = frozenset({"outstanding", "connected"})
CLOSE_WAIT_S = 2.5
#: A child silent for this long is hung (its forwarder says "alive" every ALIVE_PERIOD_S at least): it is killed.
HANG_S = 5.0


def exit_reason(exitcode: int | None) -> str:
    """A child's end in words: ``killed by SIGKILL``, ``exited with code 3``."""
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class ProcessLink:
    """``ControllerLink`` whose real link runs in a supervised child process.

    Args:
        actuator: the actuator section (pointing at the emulator where one runs).
        kind: ``serial`` or ``modbus``.
        where: the controller in words (for logs and errors).
        arm: False for a monitor that never arms the controller.
        rt_priority: ``SCHED_FIFO`` priority the child asks for (0: only a lower niceness).
        max_counts_per_s: the fastest the controller's count can move (``links.link_max_counts_per_s``);
            None: the link's default.
        backoff: restart delays.
        on_health: called (from the supervisor thread) with a reason when the link dies and None when it is back.
    """

    def __init__(
        self,
        actuator: ActuatorConfig,
        kind: str,
        where: str,
        *,
        arm: bool = True,
        rt_priority: int = 10,
        max_counts_per_s: float | None = None,
        backoff: Backoff | None = None,
        on_health: HealthListener | None = None,
    ) -> None:
        self.actuator = actuator
        self.kind = kind
        self.where = where
        self.arm = arm
        self.rt_priority = rt_priority
        self.max_counts_per_s = max_counts_per_s
        self.sync = SyncEstimator()
        self.on_health = on_health
        self.priority = ""  #: the child's scheduling priority in words (after it started)
        #: one session id for every child: the controller keeps its command record across a restart (PROTOCOL.md 4.1)
        self.session_id = random.getrandbits(32) or 1
        self.deaths = 0
        self.restarts = 0
        self.last_death = ""
        self._backoff = backoff or Backoff()
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self._ledger = CommandLedger()
        self._events: list[LinkEvent] = []
        self._stats: dict[str, int] = {}
        self._base: dict[str, int] = {}  # running totals of the children that died
        self._status: Status | None = None
        self._ready = False
        self._health: str | None = None
        self._generation = 0
        self._conn: Connection | None = None
        self._proc: BaseProcess | None = None
        self._idle_answers: dict[int, bool] = {}
        self._idle_next = 0
        self._fetch_pending = False
        self._died_reason: str | None = None
        self._controller: tuple[int, int] | None = None  # (boot id, epoch) the running child reported; stamps commands
        self._controller_seen: tuple[int, int] | None = None  # the last ever reported (an epoch change resets the sync)
        self._cancel_later: list[int] = []  # cancels asked while no child ran, of commands carried over
        self._t_heard = 0.0  # monotonic time of the child's last message
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- ControllerLink -------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="link-supervisor", daemon=True)
        self._thread.start()
        # the child ignores SIGTERM (the line disarms in order), so multiprocessing's own exit hook, which
        # terminates and then joins daemon children, would wait for ever on a link nobody closed: close it first
        atexit.register(self.close)

    def wait_ready(self, timeout_s: float) -> bool:
        return self._wait_until(lambda: self._ready, timeout_s)

    def submit(self, command: Fire | Pick) -> None:
        with self._lock:
            conn = self._conn
            if conn is None:  # no link process now: never queued for one that may come back too late
                ev = lost_event(command.command_id, f"link {self._health or 'down'}")
                self._ledger.submitted(command.command_id, -1)
                self._ledger.accept(ev, -1)
                self._events.append(ev)
                return
            boot_id = None
            if self._controller is not None and command.epoch == EPOCH_UNSET:
                boot_id = self._controller[0]  # stamped here, so the parent knows what the controller was sent
                command = dataclasses.replace(command, epoch=self._controller[1])
            self._ledger.submitted(command.command_id, self._generation, command, boot_id)
        self._send(("submit", command), conn)  # to that process: a command of a dead one is carried over

    def cancel(self, command_id: int) -> None:
        with self._lock:
            if self._conn is None:  # kept for the next process if it is carried over to it
                if command_id in self._ledger.outstanding:
                    self._cancel_later.append(command_id)
                return
        self._send(("cancel", command_id))

    def poll_events(self) -> list[LinkEvent]:
        with self._lock:
            ev, self._events = self._events, []
            return ev

    def wait_idle(self, timeout_s: float) -> bool:
        with self._lock:
            request, gen = self._idle_next, self._generation
            self._idle_next += 1
        if not self._send(("idle", request, timeout_s)):
            return self._wait_until(lambda: not self._ledger.outstanding, timeout_s)
        done = self._wait_until(lambda: request in self._idle_answers or self._generation != gen or self._conn is None,
                                timeout_s + 1.0)
        with self._lock:
            answer = self._idle_answers.pop(request, None)
            if answer is None:  # the child died meanwhile: its commands were finished as lost
                return done and not self._ledger.outstanding
            return answer

    def fetch_reports(self) -> None:
        with self._lock:
            if self._fetch_pending:  # asked already: the counters the child sends next answer it
                return
            self._fetch_pending = True
        self._send(("fetch",))

    def last_status(self) -> Status | None:
        with self._lock:
            return self._status

    def stats(self) -> dict[str, int]:
        with self._lock:
            s = {k: v + self._stats.get(k, 0) for k, v in self._base.items()}
            for k, v in self._stats.items():
                s.setdefault(k, v)
            s["connected"] = int(self._stats.get("connected", 0)) if self._conn is not None else 0
            s["outstanding"] = len(self._ledger.outstanding)
            s["lost"] = self._ledger.outcomes.get(LOST, 0)
            s["process_deaths"] = self.deaths
            s["process_restarts"] = self.restarts
            s["carried_over"] = self._ledger.carried
            s["stray_events"] = self._ledger.strays
            return s

    def close(self) -> None:
        """Close the child's link (it disarms the controller), stop the supervisor; never hangs."""
        atexit.unregister(self.close)
        self._stop.set()
        if self._thread is not None:  # first the supervisor: it starts no process any more
            self._thread.join(CLOSE_WAIT_S)
            self._thread = None
        proc, conn = self._proc, self._conn
        self._send(("close",))
        if proc is not None:
            proc.join(CLOSE_WAIT_S)
            if proc.is_alive():
                log.warning("the link process did not stop within %.1f s: killing it", CLOSE_WAIT_S)
                proc.kill()
                proc.join(1.0)
        if conn is not None:
            self._drain(conn)
            conn.close()
        with self._changed:
            self._conn = None
            self._events.extend(self._ledger.lose_all("link closed"))
            self._changed.notify_all()

    # --- health ---------------------------------------------------------------------------------------------------
    def health(self) -> str | None:
        """None while the link process runs; else why not (``process died (killed by SIGKILL), restarting``)."""
        with self._lock:
            return self._health

    def balanced(self) -> bool:
        """``sent == sum of outcomes + outstanding`` on this side of the pipe."""
        with self._lock:
            return self._ledger.balanced()

    def child_pid(self) -> int | None:
        """The link process's id (None while none runs)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    # --- internals ------------------------------------------------------------------------------------------------
    def _wait_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
            return True

    def _send(self, msg: tuple[Any, ...], conn: Connection | None = None) -> bool:
        conn = conn or self._conn
        if conn is None:
            return False
        try:
            with self._send_lock:
                conn.send(msg)
            return True
        except (OSError, ValueError):  # the child is gone: the supervisor finishes its commands
            return False

    def _spawn(self) -> None:
        here, there = self._ctx.Pipe(duplex=True)
        level = logging.getLogger().getEffectiveLevel()
        with self._changed:  # no child runs: nothing is submitted meanwhile (a submission is lost at once)
            generation = self._generation + 1
            carried: list[Carried] = self._ledger.hand_over(generation)
            cancels, self._cancel_later = self._cancel_later, []
        if carried:
            log.info("handing %d commands without an outcome to the new link process, to ask the controller", len(carried))
        # the carried commands travel with the process's arguments: the child asks about them before anything else
        args = (there, self.actuator, self.kind, self.arm, self.rt_priority, level, self.max_counts_per_s,
                self.session_id, carried, cancels)
        proc = self._ctx.Process(target=link_child.run_child, args=args, name="sorter-link", daemon=True)
        try:
            proc.start()
        except BaseException:
            with self._changed:  # for the next try
                self._ledger.carry_over("the link process could not start")
                self._cancel_later = cancels + self._cancel_later
            raise
        there.close()
        with self._changed:
            self._generation = generation
            self._proc, self._conn = proc, here
            self._died_reason = None
            self._stats = {}
            self._controller = None  # until the new child has read the controller's boot id and epoch
            late, self._cancel_later = self._cancel_later, []  # asked while it started
            self._changed.notify_all()
        for cid in late:
            self._send(("cancel", cid), here)
        self._backoff.started(time.monotonic())
        self._t_heard = time.monotonic()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            proc, conn = self._proc, self._conn
            if proc is None or conn is None:
                return
            ready = wait_any([conn, proc.sentinel], timeout=0.1)
            if self._stop.is_set():
                return
            if conn in ready and self._drain(conn):
                self._t_heard = time.monotonic()
                continue
            if not ready and time.monotonic() - self._t_heard > HANG_S:  # alive but silent: hung, not trusted
                self._died_reason = f"stopped answering for {HANG_S:g} s"
                proc.kill()
                ready = [proc.sentinel]
            if self._stop.is_set():  # closing: the child's end is expected
                return
            if proc.sentinel in ready or conn in ready:
                self._on_death(proc, conn)
                if not self._restart():
                    return

    def _drain(self, conn: Connection) -> bool:
        """Handle every waiting message; False when the pipe is closed (the child is gone)."""
        try:
            while conn.poll():
                self._handle(conn.recv())
        except (EOFError, OSError):
            return False
        return True

    def _handle(self, msg: tuple[Any, ...]) -> None:
        op = msg[0]
        back = False  # the restarted link is ready: tell the health listener
        with self._changed:
            gen = self._generation
            if op == "events":
                self._events.extend(e for e in msg[1] if self._ledger.accept(e, gen))
            elif op == "stats":
                self._stats = msg[1]
                self._fetch_pending = False
            elif op == "status":
                self._status = msg[1]
            elif op == "sync":
                self.sync.add(*msg[1:])
            elif op == "epoch":
                ident = (int(msg[1]), int(msg[2]))
                if self._controller_seen not in (None, ident):  # probes of the old count mean nothing now
                    self.sync.reset()
                self._controller = self._controller_seen = ident
            elif op == "ready":
                self._ready = bool(msg[1])
                if self._ready and self._health is not None:
                    self._health, back = None, True
            elif op == "idle":
                self._idle_answers[msg[1]] = bool(msg[2])
            elif op == "up":
                self.priority = msg[2]
                log.info("controller link process %s up for %s (%s)", self._proc.pid if self._proc else "?", msg[1], msg[2])
            elif op == "alive":
                pass
            elif op == "died":
                self._died_reason = str(msg[1])
            self._changed.notify_all()
        if back:
            log.warning("controller link back after a restart (%s)", self.where)
            self._tell(None)

    def _on_death(self, proc: BaseProcess, conn: Connection) -> None:
        self._drain(conn)  # the last words (events, "died") come before the end of the pipe
        proc.join(1.0)
        if proc.is_alive():  # the pipe broke but the process lingers: it cannot be trusted any more
            proc.kill()
            proc.join(1.0)
        why = self._died_reason or exit_reason(proc.exitcode)
        reason = f"process died ({why}), restarting"
        with self._changed:
            for k, v in self._stats.items():
                if k not in GAUGES:
                    self._base[k] = self._base.get(k, 0) + v
            self._stats = {}
            self._conn, self._proc = None, None
            self._ready = False
            self._fetch_pending = False
            lost = self._ledger.carry_over(f"link {reason}")
            self._events.extend(lost)
            self._controller = None
            self.deaths += 1
            self.last_death = why
            self._health = reason
            self._changed.notify_all()
        conn.close()
        log.error("controller link process for %s %s; %d commands without an outcome carried over to the next one "
                  "(%d sent before the controller's epoch was known finished as lost)",
                  self.where, why, len(self._ledger.outstanding), len(lost))
        self._tell(reason)

    def _restart(self) -> bool:
        while True:
            if self._stop.wait(self._backoff.died(time.monotonic())):
                return False
            try:
                self._spawn()
            except Exception as e:  # could not even start a process: try again after the next backoff
                log.exception("cannot start the link process")
                with self._changed:
                    self._health = f"process cannot start ({e}), retrying"
                continue
            self.restarts += 1
            return True

    def _tell(self, reason: str | None) -> None:
        listener = self.on_health
        if listener is None:
            return
        try:
            listener(reason)
        except Exception:
            log.exception("the link health listener failed")
