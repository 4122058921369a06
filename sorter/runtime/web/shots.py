"""The planned shots the console draws: each command the planner issued, where it acts, and its outcome once known.

Bounded: at most ``capacity`` shots are kept, and a shot is forgotten once the
belt has carried it ``keep_past_mm`` past the point where it acted. The main
loop adds commands and reports; the web publisher reads copies. Pure standard
library plus the entity types.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from sorter.entities import Command, CommandReport, FireCommand

#: Final outcomes the console colours; any other status an actuator reports is shown as it is.
FINAL = ("executed", "late", "rejected", "cancelled", "lost")


@dataclass(frozen=True, slots=True)
class Shot:
    """One planned valve window or pick, in odometer positions (mm).

    Attributes:
        command_id: the command.
        track_id: the object it is for.
        class_id: the object's class when planned.
        kind: ``fire`` (valve window) or ``pick``.
        s_start_mm: odometer at which it acts (valves open / gripper closes).
        s_end_mm: odometer at which it is over (valves close; equals ``s_start_mm`` for a pick).
        s_target_mm: odometer at which the object's centre is on the ejection line / pick point.
        valve_first: first valve (fire only, else -1).
        valve_last: last valve (fire only, else -1).
        x_mm: lateral pick point (pick only, else 0).
        y_pick_mm: world position along the belt where the pick happens (pick only, else 0).
        outcome: ``planned`` (no answer yet), ``held`` (paused: never sent), ``accepted``, or the final status the
            actuator reported (:data:`FINAL`, or whatever else it says).
    """

    command_id: int
    track_id: int
    class_id: int
    kind: str
    s_start_mm: float
    s_end_mm: float
    s_target_mm: float
    valve_first: int = -1
    valve_last: int = -1
    x_mm: float = 0.0
    y_pick_mm: float = 0.0
    outcome: str = "planned"


def shot_of(cmd: Command, held: bool) -> Shot:
    """The shot of ``cmd``; ``held`` when actuation was paused and the command never left the host."""
    outcome = "held" if held else "planned"
    if isinstance(cmd, FireCommand):
        return Shot(cmd.command_id, cmd.track_id, cmd.class_id, "fire", cmd.s_open_mm, cmd.s_close_mm, cmd.s_target_mm,
                    cmd.valve_first, cmd.valve_last, outcome=outcome)
    return Shot(cmd.command_id, cmd.track_id, cmd.class_id, "pick", cmd.s_pick_mm, cmd.s_pick_mm, cmd.s_pick_mm,
                x_mm=cmd.x_mm, y_pick_mm=cmd.u_mm + cmd.s_pick_mm, outcome=outcome)


class ShotBook:
    """Recent shots by command id, with per-valve counts of executed shots.

    Args:
        capacity: most shots kept (the oldest are dropped first).
        keep_past_mm: belt travel after ``s_end_mm`` for which a shot stays visible.
    """

    def __init__(self, capacity: int = 256, keep_past_mm: float = 600.0) -> None:
        self._shots: OrderedDict[int, Shot] = OrderedDict()
        self._lock = threading.Lock()
        self.capacity = capacity
        self.keep_past_mm = keep_past_mm
        self.valve_fires: dict[int, int] = {}
        self.outcomes: dict[str, int] = {}

    def add(self, commands: Iterable[Command], held: bool) -> None:
        with self._lock:
            for cmd in commands:
                self._shots[cmd.command_id] = shot_of(cmd, held)
                if held:
                    self.outcomes["held"] = self.outcomes.get("held", 0) + 1
                while len(self._shots) > self.capacity:
                    self._shots.popitem(last=False)

    def on_reports(self, reports: Iterable[CommandReport]) -> None:
        """Record outcomes; ``accepted`` only moves a shot that has no other answer yet."""
        with self._lock:
            for r in reports:
                status = str(r.status)
                shot = self._shots.get(r.command_id)
                if status != "accepted":
                    self.outcomes[status] = self.outcomes.get(status, 0) + 1
                if shot is None or (status == "accepted" and shot.outcome != "planned"):
                    continue
                self._shots[r.command_id] = replace(shot, outcome=status)
                if status == "executed" and shot.kind == "fire":
                    for v in range(max(0, shot.valve_first), shot.valve_last + 1):
                        self.valve_fires[v] = self.valve_fires.get(v, 0) + 1

    def visible(self, s_now_mm: float) -> list[Shot]:
        """Shots not yet ``keep_past_mm`` past their end at odometer ``s_now_mm`` (older ones are forgotten)."""
        with self._lock:
            gone = [k for k, s in self._shots.items() if s.s_end_mm + self.keep_past_mm < s_now_mm]
            for k in gone:
                del self._shots[k]
            return list(self._shots.values())

    def counts(self, valve_count: int) -> tuple[list[int], dict[str, int]]:
        """Executed shots per valve (``valve_count`` of them) and the outcome totals."""
        with self._lock:
            return [self.valve_fires.get(v, 0) for v in range(valve_count)], dict(self.outcomes)
