"""What physically happened on the virtual line: object fates, valve pulses, robot picks, object states.

These records are written by the world and its device models and read by the
scoreboard and by actuator emulators (which turn them into
``CommandReport(status="executed")``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sorter.errors import ConfigError

if TYPE_CHECKING:
    from sorter.sim.config import SimConfig

Fate = Literal["ejected", "picked", "passed"]


@dataclass(frozen=True, slots=True)
class ObjectFate:
    """The final fate of one simulated object.

    Attributes:
        object_id: the object.
        class_id: its class.
        fate: ``"ejected"`` (blown off by air), ``"picked"`` (robot) or
            ``"passed"`` (went beyond every actuator).
        t_ns: when the fate was decided (monotonic ns).
        counted: the object crossed the whole camera view (it entered
            upstream of the view after the world started); objects placed
            already inside or past the view at start are not counted.
        command_id: the pulse or pick that removed it, ``None`` when passed.
        max_visible_fraction: the most of it any captured frame showed (0 when
            no frame was captured while it was in view, or it was always hidden).
    """

    object_id: int
    class_id: int
    fate: Fate
    t_ns: int
    counted: bool
    command_id: int | None = None
    max_visible_fraction: float = 1.0


@dataclass(frozen=True, slots=True)
class PulseRecord:
    """One executed valve pulse.

    Attributes:
        command_id: the command that asked for it.
        valve_first: first valve (inclusive).
        valve_last: last valve (inclusive).
        s_open_cmd_mm: commanded opening odometer position.
        s_close_cmd_mm: commanded closing odometer position.
        t_open_ns: when air actually started (after latency and jitter).
        t_close_ns: when air actually stopped.
        s_open_actual_mm: odometer when air started.
        s_close_actual_mm: odometer when air stopped.
        ejected_ids: objects this pulse ejected (targets or not).
        hit_object_id: among the objects this pulse hit, the one whose centre was
            nearest the pulse centre (the one it was aimed at); if none was hit,
            the nearest object overlapping the valves laterally within 250 mm.
        fire_position_error_mm: along-belt position of ``hit_object_id``'s
            centre minus the jet line at the middle of the air-on interval;
            positive means the object was downstream of the line (the air was
            late). ``None`` when no object was near the valves.
        truncated: closed early by the watchdog.
        s_switch_mm: odometer when the valve was switched on (the commanded
            position, or later if it arrived late: then the command was late).
    """

    command_id: int
    valve_first: int
    valve_last: int
    s_open_cmd_mm: float
    s_close_cmd_mm: float
    t_open_ns: int
    t_close_ns: int
    s_open_actual_mm: float
    s_close_actual_mm: float
    ejected_ids: tuple[int, ...]
    hit_object_id: int | None
    fire_position_error_mm: float | None
    truncated: bool = False
    s_switch_mm: float = float("nan")


@dataclass(frozen=True, slots=True)
class PickRecord:
    """One executed (or failed) robot pick.

    Attributes:
        command_id: the pick command.
        t_ns: when the gripper closed.
        s_mm: odometer at that moment.
        success: an object was picked.
        busy: the robot was still busy with the previous pick, nothing happened.
        object_id: the picked object, or the nearest one on a miss (``None`` if none).
        error_mm: distance from the gripper to the nearest object centre (``None`` if none).
    """

    command_id: int
    t_ns: int
    s_mm: float
    success: bool
    busy: bool
    object_id: int | None
    error_mm: float | None


@dataclass(frozen=True, slots=True)
class ObjectState:
    """Where an object is at a given time (inspection, tests, tools).

    Attributes:
        object_id: id.
        class_id: class.
        x_mm: lateral centre.
        y_w_mm: along-belt centre.
        u_mm: belt-fixed centre ``y_w_mm - s_mm`` (changes only when it slides).
        half_width_mm: half lateral extent.
        half_length_mm: half along-belt extent.
        area_mm2: footprint area.
        counted: it entered upstream of the view after the start.
    """

    object_id: int
    class_id: int
    x_mm: float
    y_w_mm: float
    u_mm: float
    half_width_mm: float
    half_length_mm: float
    area_mm2: float
    counted: bool


def class_weights(sim: SimConfig, class_names: Sequence[str]) -> list[float]:
    """Relative class frequencies from ``sim.class_mix`` (classes not listed weigh 1)."""
    unknown = [k for k in sim.class_mix if k not in class_names]
    if unknown:
        raise ConfigError(f"sim.class_mix has unknown class(es) {unknown}; known classes are: {', '.join(class_names)}")
    weights = [float(sim.class_mix.get(n, 1.0)) for n in class_names]
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"sim.class_mix = {dict(sim.class_mix)}: weights must be >= 0 and not all zero")
    return weights
