"""The controller link's own process: open the link, carry out the line's requests, mirror what the link knows.

Entry point :func:`run_child` (``multiprocessing``, spawn). The child first raises
its scheduling priority where allowed (:func:`raise_priority`), then opens the link
with the same opener as everyone else (``sorter.actuate.links.build_link``), under
the line's one session id, so heartbeats and command I/O run on an interpreter that
the vision work never holds. A restarted child is given the commands its
predecessor left without an outcome (each stamped with its epoch, with the
controller's boot id): its link asks the controller about them before anything else.

Over one duplex pipe:

* from the line: ``("submit", Fire|Pick)``, ``("cancel", id)``, ``("fetch",)``, ``("idle", request, timeout_s)``,
  ``("close",)``;
* to the line: ``("up", where, priority)``, ``("ready", bool)``, ``("events", [LinkEvent])``, ``("stats", dict)``,
  ``("epoch", boot_id, epoch)`` (the controller's, whenever it changes: the line stamps commands with it),
  ``("status", Status)``, ``("sync", t_send_ns, t_recv_ns, device_time_us, encoder_count)``,
  ``("idle", request, ok)``, ``("alive",)`` (twice a second), ``("died", reason)``, ``("closed",)``.

A forwarder thread sends news every :data:`FORWARD_PERIOD_S`; an ``idle`` answer
is sent only after everything the link said before it, so the line's
``wait_idle`` sees every event. Any exception that escapes a thread of the child
(the link's included) ends the child with ``("died", reason)``: the line's
supervisor restarts it. A closed pipe (the line is gone) disarms and exits.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from firmware_bridge.messages import Fire, Pick
    from firmware_bridge.modbus_link import ModbusLink
    from firmware_bridge.serial_link import SerialLink
    from sorter.config import ActuatorConfig

log = logging.getLogger(__name__)

FORWARD_PERIOD_S = 0.001
ALIVE_PERIOD_S = 0.5
EXIT_DIED = 3  #: exit code of a child whose link (or another thread) died


def raise_priority(rt_priority: int, nice: int = -10) -> tuple[bool, str]:
    """Raise this process's scheduling priority: ``SCHED_FIFO`` at ``rt_priority``, else niceness ``nice``.

    Threads started afterwards inherit it. Without the capability (``CAP_SYS_NICE``, or
    ``LimitRTPRIO`` under systemd) the process keeps its normal priority.

    Returns:
        (raised, what in words), e.g. ``(True, "SCHED_FIFO priority 10")``.
    """
    why = ""
    if rt_priority > 0 and hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt_priority))
            return True, f"SCHED_FIFO priority {rt_priority}"
        except OSError as e:
            why = f"SCHED_FIFO refused ({e.strerror or e})"
    if nice < 0:
        try:
            before = os.nice(0)
            after = os.nice(nice)
            if after < before:
                return True, f"nice {after}" + (f" ({why})" if why else "")
        except OSError as e:
            why = (why + "; " if why else "") + f"nice {nice} refused ({e.strerror or e})"
    return False, "normal priority" + (f": {why}; grant CAP_SYS_NICE (the systemd unit does)" if why else "")


class _Child:
    """The child's state: the link, the pipe and what was last sent."""

    def __init__(self, conn: Connection, link: SerialLink | ModbusLink) -> None:
        self.conn = conn
        self.link = link
        self.send_lock = threading.Lock()
        self.flush_lock = threading.Lock()
        self.stop = threading.Event()
        self._stats: dict[str, int] = {}
        self._status: Any = None
        self._sync_count = 0
        self._ready = False
        self._controller: tuple[int, int] | None = None

    def send(self, msg: tuple[Any, ...]) -> None:
        try:
            with self.send_lock:
                self.conn.send(msg)
        except (OSError, ValueError, EOFError):  # the line is gone: the command loop sees it and exits
            self.stop.set()

    def flush(self) -> None:
        """Send everything new: events, the controller's epoch, readiness, status, sync probes, stats (in that order).

        The counters are read before the events: the link thread counts an outcome and queues its event in one
        step, so every outcome those counters hold has its event in this message or an earlier one. Read after
        the events, they could count an outcome whose event waits for the next flush, and a line that waits for
        the device's executions to be counted (``BridgeActuator.wait_idle``) would go on without its report.
        """
        with self.flush_lock:
            link = self.link
            stats = link.stats()
            events = link.poll_events()
            if events:
                self.send(("events", events))
            controller = link.controller_epoch()
            if controller is not None and controller != self._controller:
                self._controller = controller
                self.send(("epoch", *controller))
            ready = link.wait_ready(0.0)
            if ready != self._ready:
                self._ready = ready
                self.send(("ready", ready))
            status = link.last_status()
            if status is not None and status is not self._status:
                self._status = status
                self.send(("status", status))
            if link.sync.count != self._sync_count:
                self._sync_count = link.sync.count
                s = link.sync.latest()
                if s is not None:
                    t_send = s.host_mid_ns - s.rtt_ns // 2
                    self.send(("sync", t_send, t_send + s.rtt_ns, s.device_time_us, s.encoder_count))
            if stats != self._stats:
                self._stats = stats
                self.send(("stats", stats))

    def forward(self) -> None:
        t_alive = time.monotonic()
        while not self.stop.wait(FORWARD_PERIOD_S):
            self.flush()
            now = time.monotonic()
            if now - t_alive >= ALIVE_PERIOD_S:  # the supervisor kills a child silent for seconds (hung)
                t_alive = now
                self.send(("alive",))

    def serve(self) -> None:
        """Carry out the line's requests until it says ``close`` or goes away."""
        link = self.link
        while not self.stop.is_set():
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                log.warning("the line's process is gone: disarming the controller")
                break
            op = msg[0]
            if op == "submit":
                link.submit(msg[1])
            elif op == "cancel":
                link.cancel(msg[1])
            elif op == "fetch":
                link.fetch_reports()
            elif op == "idle":
                ok = link.wait_idle(msg[2])
                self.flush()
                self.send(("idle", msg[1], ok))
            elif op == "close":
                break
        self.stop.set()


def _died(conn: Connection, lock: threading.Lock, reason: str) -> None:
    with contextlib.suppress(Exception), lock:
        conn.send(("died", reason))
    logging.shutdown()
    os._exit(EXIT_DIED)


def run_child(
    conn: Connection,
    actuator: ActuatorConfig,
    kind: str,
    arm: bool,
    rt_priority: int,
    log_level: int,
    max_counts_per_s: float | None = None,
    session_id: int | None = None,
    adopt: Sequence[tuple[Fire | Pick, int]] = (),
    cancels: Sequence[int] = (),
) -> None:
    """Entry point of the link process.

    Args:
        conn: this end of the pipe to the line.
        actuator: the actuator section (pointing at the emulator where one runs).
        kind: ``serial`` or ``modbus``.
        arm: False for a monitor that never arms the controller.
        rt_priority: ``SCHED_FIFO`` priority to ask for (0: only a lower niceness).
        log_level: the line's log level.
        max_counts_per_s: the fastest the controller's count can move; None: the link's default.
        session_id: the line's session id (the same for every restart); None: a random one.
        adopt: commands a previous link process left without an outcome, as sent (epoch stamped), each with
            the controller's boot id then: the link asks the controller about them first.
        cancels: cancels of those commands asked for while no link process ran.
    """
    try:
        _run(conn, actuator, kind, arm, rt_priority, log_level, max_counts_per_s, session_id, adopt, cancels)
    except Exception as e:  # e.g. the link cannot even be built: the supervisor logs the reason and retries
        log.exception("the link process failed")
        _died(conn, threading.Lock(), f"{type(e).__name__}: {e}")


def _run(
    conn: Connection,
    actuator: ActuatorConfig,
    kind: str,
    arm: bool,
    rt_priority: int,
    log_level: int,
    rate: float | None,
    session_id: int | None,
    adopt: Sequence[tuple[Fire | Pick, int]],
    cancels: Sequence[int],
) -> None:
    from sorter.actuate.links import build_link

    # Ctrl-C and systemd's SIGTERM reach the whole group: the line closes this process in order (disarm first)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raised, how = raise_priority(rt_priority)
    if raised:
        log.info("controller link process %d runs at %s", os.getpid(), how)
    else:
        log.warning("controller link process %d runs at %s", os.getpid(), how)
    link, where, _fix = build_link(actuator, kind, arm, max_counts_per_s=rate, session_id=session_id)
    if adopt:
        log.info("asking the controller about %d commands the previous link process left without an outcome", len(adopt))
        link.adopt(adopt)
    for cid in cancels:
        link.cancel(cid)
    child = _Child(conn, link)

    def excepthook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "a thread"
        log.error("%s of the link process died", name, exc_info=args.exc_value)
        _died(conn, child.send_lock, f"thread died: {args.exc_type.__name__}: {args.exc_value}")

    threading.excepthook = excepthook
    child.send(("up", where, how))
    gc.collect()
    gc.freeze()  # what is loaded now lives as long as the process: keep it out of full collections
    link.start()
    forwarder = threading.Thread(target=child.forward, name="link-forward", daemon=True)
    forwarder.start()
    try:
        child.serve()
    except Exception as e:
        log.exception("the link process failed")
        _died(conn, child.send_lock, f"{type(e).__name__}: {e}")
    forwarder.join(1.0)
    link.close()
    child.flush()
    child.send(("closed",))
    with contextlib.suppress(OSError):
        conn.close()
