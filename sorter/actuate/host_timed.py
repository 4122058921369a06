"""Host-timed fallback for outputs that can only switch "now" (a plain relay board).

Second best to a position-stamped controller (DESIGN.md section 1): a dedicated
timing thread converts each command's odometer positions into times with the
current belt odometer and speed, sleeps until shortly before, re-predicts with
a fresh speed, then spins to the instant and switches. Each switch's lateness
against its last prediction is measured (``jitter``) and reported by
``stats()`` as percentiles in microseconds.

Safety rules: a command whose open position has passed, or whose opening
would happen more than ``late_tolerance_ms`` after its time (or more than
``late_tolerance_mm`` along the belt), including a switch the output itself
reached too late, is dropped and reported ``late`` (never fired late); a pulse is closed after
``max_pulse_ms`` whatever its close position says; ``close()`` closes every
valve.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sorter.actuate.base import (
    Actuator,
    EncoderReading,
    OdometerSource,
    PlantPort,
    RelayOutput,
    execution_tolerance_mm,
)
from sorter.clock import Clock
from sorter.entities import Command, CommandReport, FireCommand
from sorter.errors import ConfigError

if TYPE_CHECKING:
    from sorter.config import Config

log = logging.getLogger(__name__)


class RecordingRelayOutput:
    """An output that records its switch times (benchmarks, tests, dry commissioning)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.events: list[tuple[int, int, int, bool]] = []  # (t_ns, first, last, on)
        self.open_valves: set[int] = set()

    def open(self, valve_first: int, valve_last: int, command_id: int, s_close_mm: float, not_after_ns: int) -> int | None:
        t_ns = self.clock.now_ns()
        if t_ns > not_after_ns:
            return None
        self.events.append((t_ns, valve_first, valve_last, True))
        self.open_valves.update(range(valve_first, valve_last + 1))
        return t_ns

    def close(self, valve_first: int, valve_last: int, command_id: int) -> None:
        self.events.append((self.clock.now_ns(), valve_first, valve_last, False))
        self.open_valves.difference_update(range(valve_first, valve_last + 1))

    def close_all(self) -> None:
        self.open_valves.clear()


@dataclass(order=True, slots=True)
class _Event:
    s_mm: float
    order: int
    command_id: int
    opening: bool
    cmd: FireCommand
    t_opened_ns: int = 0


def _percentile(sorted_vals: list[int], q: float) -> int:
    if not sorted_vals:
        return 0
    i = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[i]


class HostTimedActuator:
    """``Actuator`` that times valve pulses on the host.

    Args:
        clock: real-time clock (monotonic ns).
        odometer: belt odometer and speed.
        output: the relay outputs.
        valve_count: number of valves (commands outside are rejected).
        max_pulse_ms: a pulse is closed after this long whatever its close position.
        late_tolerance_ms: an opening later than this after its time is dropped (``late``).
        late_tolerance_mm: an opening later than this along the belt is dropped too (the line's execution
            tolerance, so what this actuator fires the run's counters never call late); None: time only.
        spin_ms: the thread sleeps until this long before a switch, then spins.
        switch_interval_s: Python's thread switch interval while running (the timing thread
            must get the interpreter within well under a millisecond); restored on close.
        realtime_priority: SCHED_FIFO priority asked for the timing thread (Linux, needs
            CAP_SYS_NICE; without it the thread runs at normal priority and ``stats()["realtime"]`` is 0).
            The thread only spins the last ``spin_ms`` before a switch, so it cannot starve the machine.
    """

    def __init__(
        self,
        clock: Clock,
        odometer: OdometerSource,
        output: RelayOutput,
        valve_count: int,
        max_pulse_ms: float = 80.0,
        late_tolerance_ms: float = 1.0,
        late_tolerance_mm: float | None = None,
        spin_ms: float = 1.0,
        switch_interval_s: float = 0.0002,
        realtime_priority: int | None = 10,
    ) -> None:
        self.clock = clock
        self.odometer = odometer
        self.output = output
        self.valve_count = valve_count
        self.max_pulse_ns = round(max_pulse_ms * 1e6)
        self.late_tolerance_ns = round(late_tolerance_ms * 1e6)
        self.late_tolerance_mm = late_tolerance_mm
        self.spin_ns = round(spin_ms * 1e6)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[_Event] = []
        self._order = itertools.count()
        self._queued: dict[int, _Event] = {}  # command id -> its open event while not opened
        self._open: dict[int, _Event] = {}  # command id -> its close event while open
        self._reports: list[CommandReport] = []
        self._jitter_ns: deque[int] = deque(maxlen=100_000)
        self._stats = {
            "sent": 0,
            "accepted": 0,
            "executed": 0,
            "late": 0,
            "late_at_fire": 0,
            "rejected": 0,
            "cancelled": 0,
            "max_pulse_cut": 0,
        }
        self._realtime_priority = realtime_priority
        self._realtime = 0
        self._stop = threading.Event()
        self._old_switch = sys.getswitchinterval()
        if switch_interval_s < self._old_switch:
            sys.setswitchinterval(switch_interval_s)
        self._thread = threading.Thread(target=self._run, name="host-timed-valves", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ Actuator

    def submit(self, commands: Sequence[Command]) -> None:
        now = self.clock.now_ns()
        s_now = self.odometer.odometer_mm(now)
        with self._wake:
            for c in commands:
                self._stats["sent"] += 1
                if not isinstance(c, FireCommand):
                    self._report(
                        c.command_id,
                        "rejected",
                        detail="host_timed drives valves only; robots need a position-stamped controller",
                    )
                    continue
                if not (0 <= c.valve_first <= c.valve_last < self.valve_count) or c.s_close_mm <= c.s_open_mm:
                    self._report(c.command_id, "rejected", detail="valves out of range or close before open")
                    continue
                if c.s_open_mm <= s_now or c.command_id in self._queued or c.command_id in self._open:
                    self._report(
                        c.command_id, "late" if c.s_open_mm <= s_now else "rejected", detail="open position already passed"
                    )
                    continue
                ev = _Event(c.s_open_mm, next(self._order), c.command_id, True, c)
                heapq.heappush(self._heap, ev)
                self._queued[c.command_id] = ev
                self._report(c.command_id, "accepted")
            self._wake.notify_all()

    def cancel(self, command_ids: Sequence[int]) -> None:
        with self._wake:
            for cid in command_ids:
                ev = self._queued.pop(cid, None)
                if ev is not None:
                    ev.command_id = -1  # tombstone: skipped when it reaches the top of the heap
                    self._report(cid, "cancelled")
            self._wake.notify_all()

    def poll_reports(self) -> list[CommandReport]:
        with self._lock:
            out, self._reports = self._reports, []
            return out

    def wait_idle(self, timeout_s: float) -> bool:
        return True  # every command is answered inside submit()

    def stats(self) -> dict[str, int]:
        with self._lock:
            s = dict(self._stats)
            j = sorted(self._jitter_ns)
        s["switches_timed"] = len(j)
        s["realtime"] = self._realtime
        s["jitter_p50_us"] = _percentile(j, 0.50) // 1000
        s["jitter_p99_us"] = _percentile(j, 0.99) // 1000
        s["jitter_max_us"] = (j[-1] if j else 0) // 1000
        return s

    def jitter_ns(self) -> list[int]:
        """Every measured switch lateness so far (ns, positive = after the predicted instant)."""
        with self._lock:
            return list(self._jitter_ns)

    def encoder(self) -> EncoderReading | None:
        """None: the relay board has no encoder (the odometer is the host's)."""
        return None

    def finish_outstanding(self) -> None:
        """End of a run: each command still queued is ``cancelled`` and each pulse blowing is closed now and
        reported ``executed`` (cut short), so every command sent has its outcome at the next ``poll_reports``.
        A switch the timing thread is about to make finds its command gone and does nothing."""
        with self._wake:
            for cid, ev in self._queued.items():
                ev.command_id = -1  # tombstone
                self._report(cid, "cancelled", detail="the line stopped")
            self._queued.clear()
            for cid, ev in self._open.items():
                c = ev.cmd
                self.output.close(c.valve_first, c.valve_last, cid)
                s_open = self.odometer.odometer_mm(ev.t_opened_ns)
                self._report(cid, "executed", s_actual_mm=s_open, detail="cut short: the line stopped")
                ev.command_id = -1
            self._open.clear()
            self._wake.notify_all()

    def close(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        self._thread.join(timeout=1.0)
        with self._lock:
            for ev in self._open.values():
                self.output.close(ev.cmd.valve_first, ev.cmd.valve_last, ev.cmd.command_id)
            self._open.clear()
            self.output.close_all()
        if sys.getswitchinterval() < self._old_switch:
            sys.setswitchinterval(self._old_switch)

    # --------------------------------------------------------------- thread

    def _report(self, cid: int, status: str, s_actual_mm: float | None = None, detail: str = "") -> None:
        if status != "accepted" and status in self._stats:
            self._stats[status] += 1
        elif status == "accepted":
            self._stats["accepted"] += 1
        self._reports.append(CommandReport(cid, status, s_actual_mm=s_actual_mm, detail=detail))

    def _predict_ns(self, ev: _Event, now: int) -> int | None:
        """Host time at which the odometer will read the event's position (None: belt stopped)."""
        if not ev.opening and ev.t_opened_ns and now - ev.t_opened_ns >= self.max_pulse_ns:
            return now
        v = self.odometer.speed_mm_s(now)
        if v <= 1e-6:
            return None
        t = now + round((ev.s_mm - self.odometer.odometer_mm(now)) / v * 1e9)
        if not ev.opening and ev.t_opened_ns:
            t = min(t, ev.t_opened_ns + self.max_pulse_ns)
        return t

    def _late_limit_ns(self, now: int) -> int:
        """How long after its time an opening may still switch: the time tolerance, or the belt tolerance at
        the current speed if that is tighter."""
        if self.late_tolerance_mm is None:
            return self.late_tolerance_ns
        v = self.odometer.speed_mm_s(now)
        if v <= 1e-6:
            return self.late_tolerance_ns
        return min(self.late_tolerance_ns, round(0.9 * self.late_tolerance_mm / v * 1e9))  # a tenth for the prediction

    def _raise_priority(self) -> None:
        if self._realtime_priority is None or not hasattr(os, "sched_setscheduler"):
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self._realtime_priority))  # this thread only
            self._realtime = 1
        except (PermissionError, OSError) as e:
            log.info("host-timed valves: no real-time priority for the timing thread (%s); timing will be less tight", e)

    def _run(self) -> None:
        self._raise_priority()
        while not self._stop.is_set():
            with self._wake:
                while self._heap and self._heap[0].command_id < 0:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait(0.05)
                    continue
                ev = self._heap[0]
                now = self.clock.now_ns()
                t_target = self._predict_ns(ev, now)
                if t_target is None:
                    self._wake.wait(0.002)
                    continue
                if t_target - now > self.spin_ns:
                    self._wake.wait((t_target - now - self.spin_ns) / 1e9)
                    continue  # re-predict with a fresh speed, or serve an earlier event that arrived
                heapq.heappop(self._heap)
            while self.clock.now_ns() < t_target:  # spin the last stretch (no lock held)
                pass
            self._switch(ev, t_target)

    def _switch(self, ev: _Event, t_target: int) -> None:
        c = ev.cmd
        with self._lock:
            if ev.opening:
                if self._queued.pop(c.command_id, None) is None:
                    return  # cancelled while spinning
                now = self.clock.now_ns()
                not_after = t_target + self._late_limit_ns(now)
                if now > not_after:
                    self._report(
                        c.command_id, "late", detail=f"timing thread woke {(now - t_target) / 1e6:.2f} ms late; not fired"
                    )
                    self._stats["late_at_fire"] += 1
                    return
                t_on = self.output.open(c.valve_first, c.valve_last, c.command_id, c.s_close_mm, not_after)
                if t_on is None:
                    now = self.clock.now_ns()
                    if now > not_after:  # the switch itself was held up (the output busy, this thread preempted)
                        self._report(
                            c.command_id, "late", detail=f"output reached {(now - t_target) / 1e6:.2f} ms late; not fired"
                        )
                        self._stats["late_at_fire"] += 1
                    else:
                        self._report(c.command_id, "rejected", detail="output refused")
                    return
                self._jitter_ns.append(t_on - t_target)
                close = _Event(c.s_close_mm, next(self._order), c.command_id, False, c, t_opened_ns=t_on)
                close.s_mm = c.s_close_mm
                self._open[c.command_id] = close
                heapq.heappush(self._heap, close)
                self._wake.notify_all()
                return
            if self._open.pop(c.command_id, None) is None:
                return
            self.output.close(c.valve_first, c.valve_last, c.command_id)
            t_off = self.clock.now_ns()
            self._jitter_ns.append(t_off - t_target)
            if t_off - ev.t_opened_ns >= self.max_pulse_ns and self.odometer.odometer_mm(t_off) < c.s_close_mm:
                self._stats["max_pulse_cut"] += 1
            s_open = self.odometer.odometer_mm(ev.t_opened_ns)
            self._report(c.command_id, "executed", s_actual_mm=s_open)


def create_host_timed_actuator(cfg: Config, clock: Clock, plant: PlantPort) -> Actuator:
    """Build the host-timed actuator (``actuator.type: host_timed``).

    In simulation the plant lends the simulator's valve bank switched "now" and
    the simulated belt's odometer. On a real line the runtime must construct
    ``HostTimedActuator`` itself with its measured odometer and a relay driver.

    Raises:
        ConfigError: no simulated line, or a simulated clock (``--fast``), with which host timing means nothing.
    """
    from sorter.clock import ChargedClock, ManualClock

    if isinstance(clock, ChargedClock | ManualClock):
        raise ConfigError(
            "actuator.type 'host_timed' times valves on the real clock; run without --fast, or use 'serial'/'modbus'"
        )
    parts = plant.relay_output(clock)
    if parts is None:
        raise ConfigError(
            "actuator.type 'host_timed' is available in the simulated air-jet line only (camera.type: sim, line.mode: airjet); "
            "on a real line use a position-stamped controller (actuator.type: serial or modbus)"
        )
    odometer, output = parts
    v = cfg.airjet.valves
    tolerance_mm = execution_tolerance_mm(cfg.belt.encoder_counts_per_mm)
    return HostTimedActuator(clock, odometer, output, v.count, max_pulse_ms=v.max_pulse_ms, late_tolerance_mm=tolerance_mm)
