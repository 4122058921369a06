"""Physics of a virtual valve bank: position-driven pulses, an air curtain, ejection by coverage.

Like a real controller, the bank takes *position-stamped* commands ("open
valves 12-15 when the odometer reads N, close at M"). A valve switches when
the odometer reaches the commanded position, plus its true latency and a
seeded Gaussian jitter; a pulse shorter than the minimum is extended.

While air is on, the valves blow a curtain along the line ``y = y_eject_mm``
across their lateral span. Each object carries sample points evenly covering
its footprint; a point is hit when it crosses the line while the air is on
and inside the span. An object is ejected once the hit points cover at least
``eject_min_coverage`` of its footprint (hits accumulate over pulses, since
each point crosses the line once). Any object can be ejected, so neighbours
of a target can be co-ejected, as on a real line.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sorter.sim.records import PulseRecord

if TYPE_CHECKING:
    from sorter.sim.world import SimWorld

log = logging.getLogger(__name__)

PulseListener = Callable[[PulseRecord], None]


#: a pulse that hit nothing is attributed to the nearest object within this distance
#: of the jet line (a plausible intended target); farther objects are unrelated.
NEAR_MISS_MM = 250.0


@dataclass(slots=True)
class _Pulse:
    command_id: int
    valve_first: int
    valve_last: int
    s_open_cmd_mm: float
    s_close_cmd_mm: float
    t_open_ns: int
    t_close_ns: int
    t_switch_ns: int
    done: bool = False


class ValveBankModel:
    """A row of valves across the belt at ``y_eject_mm`` (create with :meth:`SimWorld.add_valve_bank`).

    Args:
        world: the virtual line.
        valve_count: number of valves.
        valve_pitch_mm: lateral width of each valve's air.
        valve_x_first_mm: left edge of valve 0's air.
        y_eject_mm: the jet line, along the belt.
        latency_ms: true command-to-air delay (a planner compensates it with a lead).
        jitter_ms: standard deviation of the switching time.
        min_pulse_ms: shorter pulses are extended to this.
        eject_min_coverage: footprint share the air must hit to eject.
    """

    def __init__(
        self,
        world: SimWorld,
        *,
        valve_count: int,
        valve_pitch_mm: float,
        valve_x_first_mm: float,
        y_eject_mm: float,
        latency_ms: float,
        jitter_ms: float,
        min_pulse_ms: float,
        eject_min_coverage: float,
    ) -> None:
        self._world = world
        self.valve_count = int(valve_count)
        self.valve_pitch_mm = float(valve_pitch_mm)
        self.valve_x_first_mm = float(valve_x_first_mm)
        self.y_eject_mm = float(y_eject_mm)
        self._latency_ns = round(latency_ms * 1e6)
        self._jitter_ns = float(jitter_ms) * 1e6
        self._min_pulse_ns = round(min_pulse_ms * 1e6)
        self.eject_min_coverage = float(eject_min_coverage)
        index = world.register_device_line(self.y_eject_mm)
        self._rng = np.random.default_rng([world.sim.seed, 31, index])
        self._status: dict[int, str] = {}
        self._pending: dict[int, _Pulse] = {}
        self._hits: dict[int, npt.NDArray[np.bool_]] = {}
        self._records: list[PulseRecord] = []
        self._listeners: list[PulseListener] = []
        self._stats = {
            "accepted": 0,
            "late": 0,
            "rejected": 0,
            "executed": 0,
            "cancelled": 0,
            "dropped_watchdog": 0,
            "extended": 0,
        }

    # ------------------------------------------------------------------ geometry
    def span_mm(self, valve_first: int, valve_last: int) -> tuple[float, float]:
        """Lateral extent ``(x_lo, x_hi)`` of the air of valves ``valve_first..valve_last``."""
        return (
            self.valve_x_first_mm + valve_first * self.valve_pitch_mm,
            self.valve_x_first_mm + (valve_last + 1) * self.valve_pitch_mm,
        )

    # ------------------------------------------------------------------ commands
    def schedule(self, command_id: int, valve_first: int, valve_last: int, s_open_mm: float, s_close_mm: float) -> str:
        """Accept a position-stamped pulse.

        Returns:
            ``"accepted"``; ``"late"`` when ``s_open_mm`` is not ahead of the
            odometer at the world's current time (never executed);
            ``"rejected"`` for valves out of range or ``s_close_mm <= s_open_mm``.
            Re-sending a known ``command_id`` returns its first answer and
            changes nothing (the id is the idempotency key).
        """
        w = self._world
        with w.lock:
            known = self._status.get(command_id)
            if known is not None:
                return known
            status = self._admit(valve_first, valve_last, s_open_mm, s_close_mm)
            self._status[command_id] = status
            self._stats[status] += 1
            if status != "accepted":
                log.debug(
                    "pulse %d %s (valves %d-%d, s %.1f-%.1f)", command_id, status, valve_first, valve_last, s_open_mm, s_close_mm
                )
                return status
            t_open_cmd = w.t_ns_at_odometer(s_open_mm)
            t_close_cmd = w.t_ns_at_odometer(s_close_mm)
            if t_close_cmd - t_open_cmd < self._min_pulse_ns:
                t_close_cmd = t_open_cmd + self._min_pulse_ns
                self._stats["extended"] += 1
            t_open = max(t_open_cmd + self._latency_ns + self._jitter(), w.now_ns)
            t_close = max(t_close_cmd + self._latency_ns + self._jitter(), t_open + 1000)
            pulse = _Pulse(
                command_id,
                valve_first,
                valve_last,
                float(s_open_mm),
                float(s_close_mm),
                t_open,
                t_close,
                max(t_open_cmd, w.now_ns),
            )
            self._pending[command_id] = pulse
            w.push_event(t_close, functools.partial(self._on_close, pulse))
            return status

    def blow(self, command_id: int, valve_first: int, valve_last: int, t_open_ns: int, t_close_ns: int) -> None:
        """Air from a controller's pins (the emulated firmware): its outputs switched valves ``valve_first..
        valve_last`` on at ``t_open_ns`` and off at ``t_close_ns``; the air follows by the valves' latency and
        jitter, as for a scheduled pulse, and is evaluated when the world gets there (now, if that is past)."""
        w = self._world
        with w.lock:
            if not (0 <= valve_first <= valve_last < self.valve_count) or t_close_ns <= t_open_ns:
                log.warning("pin pulse of valves %d-%d ignored (bank of %d)", valve_first, valve_last, self.valve_count)
                return
            s_open, s_close = w.odometer_mm(t_open_ns), w.odometer_mm(t_close_ns)
            t_on = t_open_ns + self._latency_ns + self._jitter()
            t_off = max(t_close_ns + self._latency_ns + self._jitter(), t_on + 1000)
            pulse = _Pulse(command_id, valve_first, valve_last, s_open, s_close, t_on, t_off, t_open_ns)
            if t_off <= w.now_ns:
                self._on_close(pulse, t_off)
            else:
                w.push_event(t_off, functools.partial(self._on_close, pulse))

    def _admit(self, valve_first: int, valve_last: int, s_open_mm: float, s_close_mm: float) -> str:
        if not (0 <= valve_first <= valve_last < self.valve_count):
            return "rejected"
        if not (math.isfinite(s_open_mm) and math.isfinite(s_close_mm)) or s_close_mm <= s_open_mm:
            return "rejected"
        if s_open_mm <= self._world.odometer_mm(self._world.now_ns):
            return "late"
        return "accepted"

    def _jitter(self) -> int:
        return round(float(self._rng.normal(0.0, self._jitter_ns))) if self._jitter_ns > 0 else 0

    def cancel(self, command_id: int) -> bool:
        """Drop a pending pulse whose air has not started; False if unknown, started or done."""
        w = self._world
        with w.lock:
            p = self._pending.get(command_id)
            if p is None or p.t_open_ns <= w.now_ns:
                return False
            p.done = True
            del self._pending[command_id]
            self._stats["cancelled"] += 1
            return True

    def pending_ids(self) -> list[int]:
        """Ids of the accepted pulses not finished (started or not), in the order they were accepted."""
        with self._world.lock:
            return list(self._pending)

    def blowing(self) -> list[tuple[int, float]]:
        """``(command id, odometer mm at its switch)`` of each accepted pulse whose air has started and not ended."""
        w = self._world
        with w.lock:
            return [(cid, w.odometer_mm(p.t_switch_ns)) for cid, p in self._pending.items() if p.t_open_ns <= w.now_ns]

    def close_all(self, t_ns: int | None = None) -> int:
        """Close every valve at ``t_ns`` (default: now) and drop pending pulses (a controller's watchdog, DISARM, epoch change).

        Pulses blowing at that moment are cut short (and still evaluated);
        pulses not started are dropped. Returns the number dropped.
        """
        w = self._world
        with w.lock:
            if t_ns is not None:
                w.advance_to(t_ns)
            t = w.now_ns
            dropped = 0
            for p in list(self._pending.values()):
                if p.t_open_ns <= t:
                    self._on_close(p, t, truncated=True)
                else:
                    p.done = True
                    dropped += 1
            self._pending.clear()
            self._stats["dropped_watchdog"] += dropped
            if dropped:
                # the controller's order (its watchdog, a DISARM at the line's stop, an epoch change): it knows which
                log.warning("valve bank: all valves closed by the controller, %d pending pulse(s) dropped", dropped)
            return dropped

    # ------------------------------------------------------------------ reports
    def add_listener(self, listener: PulseListener) -> None:
        """Call ``listener(record)`` for each executed pulse (under the world lock: do not block or call back)."""
        with self._world.lock:
            self._listeners.append(listener)

    def executed_since(self, index: int) -> list[PulseRecord]:
        """Executed pulses from position ``index`` of the (append-only) record list; advance ``index`` by the length."""
        with self._world.lock:
            return self._records[index:]

    @property
    def executed(self) -> list[PulseRecord]:
        """Every executed pulse so far (copy)."""
        with self._world.lock:
            return list(self._records)

    def stats(self) -> dict[str, int]:
        """Counters: accepted, late, rejected, executed, cancelled, dropped_watchdog, extended (min pulse)."""
        with self._world.lock:
            return dict(self._stats)

    # ------------------------------------------------------------------ physics
    def _on_close(self, p: _Pulse, t_close_ns: int, truncated: bool = False) -> None:
        if p.done:
            return
        p.done = True
        self._pending.pop(p.command_id, None)
        w = self._world
        pop = w.population
        t_on, t_off = p.t_open_ns, min(t_close_ns, p.t_close_ns)
        t_mid = (t_on + t_off) // 2
        lo, hi = self.span_mm(p.valve_first, p.valve_last)
        ye = self.y_eject_mm
        ejected: list[int] = []
        hit_id: int | None = None
        error: float | None = None
        if len(pop):
            x_mid, y_mid = w.centres_at(t_mid)
            _x, y_on = w.centres_at(t_on)
            _x, y_off = w.centres_at(t_off)
            hl, hw = pop.half_length_mm, pop.half_width_mm
            lateral = (x_mid + hw > lo) & (x_mid - hw < hi)
            crossing = lateral & (y_off + hl >= ye) & (y_on - hl <= ye)
            best_dist = math.inf
            for i in np.flatnonzero(crossing):
                spec = pop.specs[i]
                sm = spec.samples_mm
                py_on = y_on[i] + sm[:, 1]
                py_off = y_off[i] + sm[:, 1]
                px = x_mid[i] + sm[:, 0]
                hit = (py_on <= ye) & (py_off >= ye) & (px >= lo) & (px <= hi)
                share = float(hit.mean())
                if share <= 0.0:
                    continue
                acc = self._hits.setdefault(spec.object_id, np.zeros(len(sm), np.bool_))
                acc |= hit
                # attribute the pulse to the hit object whose centre is nearest the pulse centre
                # (the one it was aimed at; in a pile the most-covered object may be a neighbour)
                dist = float(np.hypot(x_mid[i] - (lo + hi) / 2.0, y_mid[i] - ye))
                if dist < best_dist:
                    best_dist, hit_id, error = dist, spec.object_id, float(y_mid[i] - ye)
                if float(acc.mean()) >= self.eject_min_coverage - 1e-9:
                    ejected.append(spec.object_id)
            near = lateral & (np.abs(y_mid - ye) <= NEAR_MISS_MM)
            if hit_id is None and near.any():
                cand = np.flatnonzero(near)
                j = int(cand[np.argmin(np.abs(y_mid[cand] - ye))])
                hit_id, error = int(pop.ids[j]), float(y_mid[j] - ye)
        w.remove_objects(ejected, "ejected", t_off, p.command_id)
        for oid in ejected:
            self._hits.pop(oid, None)
        if len(self._hits) > 4 * max(len(pop), 64):
            alive = set(int(i) for i in pop.ids)
            self._hits = {k: v for k, v in self._hits.items() if k in alive}
        rec = PulseRecord(
            command_id=p.command_id,
            valve_first=p.valve_first,
            valve_last=p.valve_last,
            s_open_cmd_mm=p.s_open_cmd_mm,
            s_close_cmd_mm=p.s_close_cmd_mm,
            t_open_ns=t_on,
            t_close_ns=t_off,
            s_open_actual_mm=w.odometer_mm(t_on),
            s_close_actual_mm=w.odometer_mm(t_off),
            ejected_ids=tuple(ejected),
            hit_object_id=hit_id,
            fire_position_error_mm=error,
            truncated=truncated,
            s_switch_mm=w.odometer_mm(p.t_switch_ns),
        )
        self._records.append(rec)
        self._stats["executed"] += 1
        w.publish_pulse(rec)
        for listener in self._listeners:
            listener(rec)
