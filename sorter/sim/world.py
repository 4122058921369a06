"""The virtual line: true belt motion, objects, actuator physics and the camera.

Time is monotonic nanoseconds; simulated time 0 is ``t0_ns``. Everything is a
closed-form function of time (belt odometer, object positions), so actuator
events are executed at their exact times, in chronological order, whatever
the granularity of :meth:`SimWorld.advance_to` calls. The world is
deterministic from ``sim.seed``.

Thread-safe: one re-entrant lock guards the state. In real-time mode a
capture thread calls :meth:`SimWorld.capture` while an actuation thread
schedules pulses; pixels are drawn outside the lock.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sorter.entities import MATERIAL_CLASSES, Frame, ImageArray
from sorter.errors import ConfigError
from sorter.geometry import CameraModel
from sorter.sim.belt import BeltProfile
from sorter.sim.objects import ArrivalGenerator, ObjectSpec, make_object
from sorter.sim.population import Population
from sorter.sim.records import Fate, ObjectFate, ObjectState, PickRecord, PulseRecord, class_weights
from sorter.sim.render import LazyRenderer
from sorter.sim.scene import Exposure, find_visible, truth_of
from sorter.sim.scoring import Scoreboard
from sorter.sim.shapes import SHAPES
from sorter.sim.style import RenderStyle

if TYPE_CHECKING:
    from sorter.sim.config import SimConfig
    from sorter.sim.ejector import ValveBankModel
    from sorter.sim.robot import RobotModel

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

#: Objects are forgotten this far past the last actuator or the view (mm).
REMOVAL_MARGIN_MM = 100.0
#: Longest single time step accepted by ``advance_to`` (a larger one is a mis-set ``t0_ns``).
MAX_STEP_NS = 3600 * 1_000_000_000
#: Prefill starts this far downstream of the view end so the first frame is populated.
PREFILL_MARGIN_MM = 400.0


class SimWorld:
    """A simulated sorting line.

    Args:
        sim: the ``sim:`` settings (seed, density, speed profile, physics).
        belt_width_mm: belt width.
        nominal_speed_mm_s: belt speed used when ``sim.belt_speed_mm_s`` is unset.
        encoder_counts_per_mm: resolution of the virtual encoder.
        camera: the *true* camera model (what a perfect calibration would give).
        class_names: material classes, in class-id order.
        style: render look; ``None``: defaults from ``sim``.
        t0_ns: monotonic time of simulated time 0 (pass the clock's start in
            real-time mode).
    """

    def __init__(
        self,
        sim: SimConfig,
        *,
        belt_width_mm: float,
        nominal_speed_mm_s: float,
        encoder_counts_per_mm: float,
        camera: CameraModel,
        class_names: tuple[str, ...] = MATERIAL_CLASSES,
        style: RenderStyle | None = None,
        t0_ns: int = 0,
    ) -> None:
        missing = [n for n in class_names if n not in SHAPES]
        if missing:
            raise ConfigError(f"the simulator has no shape for class(es) {missing}; simulated classes are: {', '.join(SHAPES)}")
        self.sim = sim
        self.class_names = tuple(class_names)
        self.belt_width_mm = float(belt_width_mm)
        self.camera = camera
        self._cpm = float(encoder_counts_per_mm)
        self._t0_ns = int(t0_ns)
        self._lock = threading.RLock()
        rng = np.random.default_rng([sim.seed, 1])
        self.belt = BeltProfile(
            sim.belt_speed_mm_s or nominal_speed_mm_s,
            drift_fraction=sim.speed_drift_fraction,
            drift_period_s=sim.speed_drift_period_s,
            drift_phase_rad=float(rng.uniform(0.0, 2.0 * math.pi)),
            steps=[(st.t_s, st.speed_mm_s) for st in sim.speed_steps],
        )
        self.view_mm = camera.view_extent_mm()
        self.spawn_line_mm = self.view_mm[2] - sim.spawn_margin_mm
        self._gen = ArrivalGenerator(
            sim.seed,
            sim.density_per_m2,
            self.belt_width_mm,
            self.class_names,
            class_weights(sim, self.class_names),
            sim.slide_fraction,
            sim.slide_speed_mm_s,
            u_start_mm=self.view_mm[3] + PREFILL_MARGIN_MM,
        )
        self._pending: ObjectSpec | None = self._gen.next()
        self.population = Population(self.belt_width_mm)
        self._next_id = 1
        self._now_ns = self._t0_ns
        self._events: list[tuple[int, int, Callable[[int], None]]] = []
        self._event_seq = itertools.count()
        self._device_lines_mm: list[float] = []
        self._device_count = 0
        self._fates: list[ObjectFate] = []
        self._max_visible: dict[int, float] = {}  # object id -> largest visible fraction in any frame
        self._scoreboards: list[Scoreboard] = []
        # built outside the lock at first use: the world keeps answering (an emulated PLC reads its encoder) meanwhile
        self._view = LazyRenderer(camera, style or RenderStyle.from_sim(sim), sim.seed, self._lock)
        self._spawn_until(self._now_ns)

    # ------------------------------------------------------------------ time and odometry
    @property
    def lock(self) -> threading.RLock:
        """The world's lock (device models hold it while they read or change the world)."""
        return self._lock

    @property
    def now_ns(self) -> int:
        """Time of the last :meth:`advance_to`."""
        with self._lock:
            return self._now_ns

    @property
    def t0_ns(self) -> int:
        """Monotonic time of simulated time 0."""
        return self._t0_ns

    def t_s(self, t_ns: int) -> float:
        """Simulated seconds since ``t0_ns``."""
        return (t_ns - self._t0_ns) * 1e-9

    def odometer_mm(self, t_ns: int) -> float:
        """True belt travel (mm) at ``t_ns``."""
        return self.belt.s_mm(self.t_s(t_ns))

    def encoder_count(self, t_ns: int) -> int:
        """Virtual encoder count at ``t_ns``: ``floor(s_mm * counts_per_mm)``."""
        return math.floor(self.odometer_mm(t_ns) * self._cpm)

    def speed_mm_s(self, t_ns: int) -> float:
        """True belt speed at ``t_ns``."""
        return self.belt.speed_mm_s(self.t_s(t_ns))

    def t_ns_at_odometer(self, s_mm: float) -> int:
        """Monotonic time at which the odometer reads ``s_mm`` (rounded to the ns)."""
        return self._t0_ns + round(self.belt.t_at_s(s_mm) * 1e9)

    # ------------------------------------------------------------------ stepping
    def advance_to(self, t_ns: int) -> None:
        """Move time forward to ``t_ns``: spawn arrivals, run due actuator events in time order, retire passed objects.

        A time not after :attr:`now_ns` changes nothing (time never goes back).
        """
        with self._lock:
            if t_ns <= self._now_ns:
                return
            if t_ns - self._now_ns > MAX_STEP_NS:
                raise ValueError(
                    f"SimWorld.advance_to({t_ns}) jumps {(t_ns - self._now_ns) * 1e-9:.0f} s "
                    f"past the world's time {self._now_ns} ns; "
                    "a world driven by the monotonic clock needs SimWorld(..., t0_ns=clock.now_ns()) at creation"
                )
            self._spawn_until(t_ns)
            while self._events and self._events[0][0] <= t_ns:
                t_ev, _seq, handler = heapq.heappop(self._events)
                handler(t_ev)
            self._retire_passed(t_ns)
            self._now_ns = t_ns

    def _spawn_until(self, t_ns: int) -> None:
        s = self.odometer_mm(t_ns)
        while self._pending is not None and self._pending.u_mm + s + self._pending.half_length_mm >= self.spawn_line_mm:
            spec = self._pending
            s_birth = self.spawn_line_mm - spec.half_length_mm - spec.u_mm
            t_birth = self.belt.t_at_s(s_birth)
            self._add(spec, t_birth, counted=t_birth >= -1e-12)
            self._pending = self._gen.next()

    def _add(self, spec: ObjectSpec, t_birth_s: float, counted: bool) -> int:
        oid = self._next_id
        self._next_id += 1
        self.population.add(replace(spec, object_id=oid), t_birth_s, counted)
        return oid

    def _retire_passed(self, t_ns: int) -> None:
        if not len(self.population):
            return
        line = max([self.view_mm[3], *self._device_lines_mm]) + REMOVAL_MARGIN_MM
        _x, y = self.population.centres(self.t_s(t_ns), self.odometer_mm(t_ns))
        gone = self.population.remove(y - self.population.half_length_mm > line)
        for spec, counted in gone:
            self._record(ObjectFate(spec.object_id, spec.class_id, "passed", t_ns, counted, None, self._seen(spec.object_id)))

    # ------------------------------------------------------------------ for device models
    def push_event(self, t_ns: int, handler: Callable[[int], None]) -> None:
        """Run ``handler(t_ns)`` when time reaches ``t_ns`` (events run in time order, under the lock)."""
        with self._lock:
            heapq.heappush(self._events, (int(t_ns), next(self._event_seq), handler))

    def register_device_line(self, y_mm: float) -> int:
        """Declare the most downstream position a device acts on (objects are retired past it); returns a device index."""
        with self._lock:
            self._device_lines_mm.append(float(y_mm))
            self._device_count += 1
            return self._device_count

    def centres_at(self, t_ns: int) -> tuple[F64, F64]:
        """True centres ``(x_mm, y_w_mm)`` of every object on the belt at ``t_ns`` (rows of :attr:`population`)."""
        return self.population.centres(self.t_s(t_ns), self.odometer_mm(t_ns))

    def remove_objects(self, object_ids: Iterable[int], fate: Fate, t_ns: int, command_id: int | None) -> None:
        """Take objects off the belt (ejected or picked) and record their fate."""
        ids = set(object_ids)
        if not ids:
            return
        mask = np.isin(self.population.ids, np.fromiter(ids, dtype=np.int64))
        for spec, counted in self.population.remove(mask):
            self._record(ObjectFate(spec.object_id, spec.class_id, fate, t_ns, counted, command_id, self._seen(spec.object_id)))

    def _seen(self, object_id: int) -> float:
        return self._max_visible.pop(object_id, 0.0)

    def publish_pulse(self, record: PulseRecord) -> None:
        """Feed an executed pulse to the scoreboards."""
        for sb in self._scoreboards:
            sb.record_pulse(record)

    def publish_pick(self, record: PickRecord) -> None:
        """Feed a pick attempt to the scoreboards."""
        for sb in self._scoreboards:
            sb.record_pick(record)

    def _record(self, fate: ObjectFate) -> None:
        self._fates.append(fate)
        for sb in self._scoreboards:
            sb.record_fate(fate)

    # ------------------------------------------------------------------ devices and scoring
    def add_valve_bank(
        self,
        valve_count: int,
        valve_pitch_mm: float,
        valve_x_first_mm: float,
        y_eject_mm: float,
        *,
        min_pulse_ms: float | None = None,
        latency_ms: float | None = None,
        jitter_ms: float | None = None,
        eject_min_coverage: float | None = None,
    ) -> ValveBankModel:
        """Install a row of valves on the ejection line ``y_eject_mm`` (physics from ``sim`` unless overridden)."""
        from sorter.sim.ejector import ValveBankModel

        return ValveBankModel(
            self,
            valve_count=valve_count,
            valve_pitch_mm=valve_pitch_mm,
            valve_x_first_mm=valve_x_first_mm,
            y_eject_mm=y_eject_mm,
            latency_ms=self.sim.valve_latency_ms if latency_ms is None else latency_ms,
            jitter_ms=self.sim.valve_jitter_ms if jitter_ms is None else jitter_ms,
            min_pulse_ms=self.sim.valve_min_pulse_ms if min_pulse_ms is None else min_pulse_ms,
            eject_min_coverage=self.sim.eject_min_coverage if eject_min_coverage is None else eject_min_coverage,
        )

    def add_robot(
        self,
        window_y_start_mm: float,
        window_y_end_mm: float,
        x_min_mm: float,
        x_max_mm: float,
        *,
        cycle_ms: float | None = None,
        tolerance_mm: float | None = None,
        jitter_mm: float | None = None,
    ) -> RobotModel:
        """Install a pick robot working between ``window_y_start_mm`` and ``window_y_end_mm``."""
        from sorter.sim.robot import RobotModel

        return RobotModel(
            self,
            window_y_start_mm=window_y_start_mm,
            window_y_end_mm=window_y_end_mm,
            x_min_mm=x_min_mm,
            x_max_mm=x_max_mm,
            cycle_ms=self.sim.robot_cycle_ms if cycle_ms is None else cycle_ms,
            tolerance_mm=self.sim.robot_tolerance_mm if tolerance_mm is None else tolerance_mm,
            jitter_mm=self.sim.robot_jitter_mm if jitter_mm is None else jitter_mm,
        )

    def scoreboard(self, target_class_ids: frozenset[int]) -> Scoreboard:
        """Create a scoreboard fed from now on with every fate, pulse and pick."""
        sb = Scoreboard(target_class_ids, self.class_names)
        with self._lock:
            self._scoreboards.append(sb)
        return sb

    @property
    def fates(self) -> list[ObjectFate]:
        """Every decided fate so far (copy)."""
        with self._lock:
            return list(self._fates)

    # ------------------------------------------------------------------ objects
    def place_object(
        self,
        class_name: str,
        x_mm: float,
        y_w_mm: float,
        *,
        angle_rad: float = 0.0,
        seed: int = 0,
    ) -> int:
        """Put one object on the belt now, lying still (scenarios and tests); returns its id.

        Args:
            class_name: material class (its shape is drawn from ``seed``).
            x_mm: lateral centre.
            y_w_mm: along-belt centre at the current time.
            angle_rad: 0 puts the long axis across the belt, pi/2 along it.
            seed: shape/size/colour seed.
        """
        if class_name not in self.class_names:
            raise ValueError(f"unknown class {class_name!r}; known: {', '.join(self.class_names)}")
        with self._lock:
            s = self.odometer_mm(self._now_ns)
            rng = np.random.default_rng([self.sim.seed, 99, seed])
            spec = make_object(
                rng,
                class_name,
                self.class_names.index(class_name),
                u_mm=y_w_mm - s,
                x_mm=x_mm,
                belt_width_mm=self.belt_width_mm,
                sliding=False,
                slide_speed_mm_s=0.0,
                angle_rad=angle_rad,
            )
            counted = y_w_mm + spec.half_length_mm <= self.view_mm[2]
            return self._add(spec, self.t_s(self._now_ns), counted)

    def object_states(self, t_ns: int | None = None) -> list[ObjectState]:
        """State of every object on the belt at ``t_ns`` (default: now), without advancing."""
        with self._lock:
            t = self._now_ns if t_ns is None else t_ns
            x, y = self.centres_at(t)
            s = self.odometer_mm(t)
            pop = self.population
            return [
                ObjectState(
                    spec.object_id,
                    spec.class_id,
                    float(x[i]),
                    float(y[i]),
                    float(y[i] - s),
                    spec.half_width_mm,
                    spec.half_length_mm,
                    spec.area_mm2,
                    pop.counted[i],
                )
                for i, spec in enumerate(pop.specs)
            ]

    # ------------------------------------------------------------------ camera
    @property
    def style(self) -> RenderStyle:
        """Current render look."""
        return self._view.style

    def set_style(self, style: RenderStyle) -> None:
        """Change the render look (domain randomisation: may be called per frame)."""
        self._view.set_style(style)

    def prepare_renderer(self) -> None:
        """Build the renderer now (belt texture and lookup tables, about 0.1 s) rather than at the first frame."""
        self._view.get()

    def capture(self, t_ns: int, frame_index: int, render: bool = True, camera_id: str = "cam0") -> Frame:
        """Expose the virtual camera at ``t_ns`` (advancing the world to it).

        Returns:
            A frame with ``s_capture_mm`` as the encoder reports it (count /
            counts per mm), ground truth for every object at least partly in
            the image, and the rendered image, or an empty ``(0, 0, 3)`` image
            (and no drawing cost) when ``render`` is false.
        """
        return self.develop(self.expose(t_ns, frame_index, camera_id), render)

    def expose(self, t_ns: int, frame_index: int, camera_id: str = "cam0") -> Exposure:
        """The camera's exposure at ``t_ns`` (advancing the world to it): stamps and truth, pixels not drawn yet.

        ``develop`` draws them later, whatever the world did meanwhile: a loop that
        lets frames go by draws only the one it will use.
        """
        with self._lock:
            self.advance_to(t_ns)
            t_s = self.t_s(t_ns)
            s = self.belt.s_mm(t_s)
            count = math.floor(s * self._cpm)
            speed = self.belt.speed_mm_s(t_s)
            x, y = self.population.centres(t_s, s)
            specs = list(self.population.specs)
        visible = find_visible(self.camera, self.view_mm, specs, x, y)
        truth = truth_of(self.camera, visible)
        seen = self._max_visible
        for tob in truth:
            if tob.visible_fraction > seen.get(tob.object_id, 0.0):
                seen[tob.object_id] = tob.visible_fraction
        frame = Frame(
            image=np.zeros((0, 0, 3), np.uint8),
            t_capture_ns=t_ns,
            s_capture_mm=count / self._cpm,
            frame_index=frame_index,
            camera_id=camera_id,
            truth=truth,
        )
        return Exposure(frame, visible, s, speed, t_s)

    def develop(self, exposure: Exposure, render: bool = True) -> Frame:
        """The exposure's frame, with its image drawn when ``render`` (else the empty image, at no cost)."""
        if not render:
            return exposure.frame
        e = exposure
        image: ImageArray = self._view.get().render(
            e.visible, s_mm=e.s_mm, speed_mm_s=e.speed_mm_s, t_s=e.t_s, frame_index=e.frame.frame_index
        )
        return replace(e.frame, image=image)
