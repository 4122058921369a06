"""Physics of a virtual pick robot working in a window downstream of the camera.

A pick is position-stamped: the gripper closes when the odometer reads
``s_pick_mm``, at world ``(x_mm, u_mm + s_pick_mm)`` plus seeded Gaussian
jitter. It succeeds if an object's true centre lies within the tolerance, and
takes that object off the belt. A pick takes ``cycle_ms``; a pick due while
the robot is still busy fails (counted as busy).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sorter.sim.records import PickRecord

if TYPE_CHECKING:
    from sorter.sim.world import SimWorld

log = logging.getLogger(__name__)

PickListener = Callable[[PickRecord], None]


@dataclass(slots=True)
class _Pick:
    command_id: int
    x_mm: float
    u_mm: float
    s_pick_mm: float
    t_ns: int
    done: bool = False


class RobotModel:
    """A pick robot (create with :meth:`SimWorld.add_robot`).

    Args:
        world: the virtual line.
        window_y_start_mm: upstream end of the reach window (along the belt).
        window_y_end_mm: downstream end of the reach window.
        x_min_mm: lateral reach, left.
        x_max_mm: lateral reach, right.
        cycle_ms: duration of one pick (the robot is busy meanwhile).
        tolerance_mm: largest gripper-to-centre distance that still picks.
        jitter_mm: standard deviation of the gripper position, per axis.
    """

    def __init__(
        self,
        world: SimWorld,
        *,
        window_y_start_mm: float,
        window_y_end_mm: float,
        x_min_mm: float,
        x_max_mm: float,
        cycle_ms: float,
        tolerance_mm: float,
        jitter_mm: float,
    ) -> None:
        if window_y_end_mm <= window_y_start_mm or x_max_mm <= x_min_mm:
            raise ValueError(
                f"robot reach window y {window_y_start_mm}..{window_y_end_mm}, x {x_min_mm}..{x_max_mm} is empty; "
                "the end of each range must exceed its start"
            )
        self._world = world
        self.window_y_mm = (float(window_y_start_mm), float(window_y_end_mm))
        self.x_range_mm = (float(x_min_mm), float(x_max_mm))
        self._cycle_ns = round(cycle_ms * 1e6)
        self.tolerance_mm = float(tolerance_mm)
        self._jitter_mm = float(jitter_mm)
        index = world.register_device_line(self.window_y_mm[1])
        self._rng = np.random.default_rng([world.sim.seed, 41, index])
        self._busy_until_ns = -(2**62)
        self._status: dict[int, str] = {}
        self._pending: dict[int, _Pick] = {}
        self._records: list[PickRecord] = []
        self._listeners: list[PickListener] = []
        self._stats = {"accepted": 0, "late": 0, "rejected": 0, "executed": 0, "succeeded": 0, "busy": 0, "cancelled": 0}

    def schedule_pick(self, command_id: int, x_mm: float, u_mm: float, s_pick_mm: float) -> str:
        """Accept a position-stamped pick.

        Returns:
            ``"accepted"``; ``"late"`` when ``s_pick_mm`` is not ahead of the
            current odometer; ``"rejected"`` when the pick point
            ``(x_mm, u_mm + s_pick_mm)`` is out of reach. A known
            ``command_id`` returns its first answer.
        """
        w = self._world
        with w.lock:
            known = self._status.get(command_id)
            if known is not None:
                return known
            y = u_mm + s_pick_mm
            finite = all(math.isfinite(v) for v in (x_mm, u_mm, s_pick_mm))
            in_reach = self.window_y_mm[0] <= y <= self.window_y_mm[1] and self.x_range_mm[0] <= x_mm <= self.x_range_mm[1]
            if not (finite and in_reach):
                status = "rejected"
            elif s_pick_mm <= w.odometer_mm(w.now_ns):
                status = "late"
            else:
                status = "accepted"
            self._status[command_id] = status
            self._stats[status] += 1
            if status != "accepted":
                return status
            pick = _Pick(command_id, float(x_mm), float(u_mm), float(s_pick_mm), w.t_ns_at_odometer(s_pick_mm))
            self._pending[command_id] = pick
            w.push_event(pick.t_ns, functools.partial(self._execute, pick))
            return status

    def cancel(self, command_id: int) -> bool:
        """Drop a pending pick; False if unknown or done."""
        with self._world.lock:
            p = self._pending.pop(command_id, None)
            if p is None:
                return False
            p.done = True
            self._stats["cancelled"] += 1
            return True

    def pending_ids(self) -> list[int]:
        """Ids of the accepted picks not attempted yet, in the order they were accepted."""
        with self._world.lock:
            return list(self._pending)

    def add_listener(self, listener: PickListener) -> None:
        """Call ``listener(record)`` after each pick attempt (under the world lock: do not block)."""
        with self._world.lock:
            self._listeners.append(listener)

    def executed_since(self, index: int) -> list[PickRecord]:
        """Pick attempts from position ``index`` of the append-only record list."""
        with self._world.lock:
            return self._records[index:]

    @property
    def executed(self) -> list[PickRecord]:
        """Every pick attempt so far (copy)."""
        with self._world.lock:
            return list(self._records)

    def stats(self) -> dict[str, int]:
        """Counters: accepted, late, rejected, executed, succeeded, busy, cancelled."""
        with self._world.lock:
            return dict(self._stats)

    def _execute(self, p: _Pick, t_ns: int) -> None:
        if p.done:
            return
        p.done = True
        self._pending.pop(p.command_id, None)
        w = self._world
        s = w.odometer_mm(t_ns)
        self._stats["executed"] += 1
        if t_ns < self._busy_until_ns:
            self._stats["busy"] += 1
            rec = PickRecord(p.command_id, t_ns, s, success=False, busy=True, object_id=None, error_mm=None)
        else:
            self._busy_until_ns = t_ns + self._cycle_ns
            jx, jy = self._rng.normal(0.0, self._jitter_mm, 2) if self._jitter_mm > 0 else (0.0, 0.0)
            gx, gy = p.x_mm + float(jx), p.u_mm + p.s_pick_mm + float(jy)
            obj_id: int | None = None
            err: float | None = None
            if len(w.population):
                x, y = w.centres_at(t_ns)
                d = np.hypot(x - gx, y - gy)
                j = int(np.argmin(d))
                obj_id, err = int(w.population.ids[j]), float(d[j])
            success = err is not None and err <= self.tolerance_mm
            if success and obj_id is not None:
                w.remove_objects([obj_id], "picked", t_ns, p.command_id)
                self._stats["succeeded"] += 1
            rec = PickRecord(p.command_id, t_ns, s, success=success, busy=False, object_id=obj_id, error_mm=err)
        self._records.append(rec)
        w.publish_pick(rec)
        for listener in self._listeners:
            listener(rec)
