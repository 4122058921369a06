"""Frozen entity types passed between pipeline stages.

Every stage (capture, detect, track, schedule, actuate) shares only these
types. Units are in the names: ``_mm`` millimetres, ``_ns`` nanoseconds of the
monotonic clock, ``_px`` pixels.

Coordinate frames (see DESIGN.md section 1):

* **image**: pixels, x to the right, y down.
* **world / belt plane**: millimetres on the belt surface. ``x_mm`` runs across
  the belt from its left edge (0) to its right edge (``belt.width_mm``);
  ``y_w_mm`` runs along the belt in the direction of travel, 0 at the camera's
  reference line. Objects move towards larger ``y_w_mm``.
* **belt-fixed**: ``u_mm = y_w_mm - s_mm`` where ``s_mm`` is the belt odometer.
  An object lying still on the belt keeps a constant ``u_mm``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt

#: Canonical material classes, in class-id order. Detectors, the simulator and
#: the sorting policy all use these names.
MATERIAL_CLASSES: tuple[str, ...] = (
    "pet_bottle",
    "hdpe_container",
    "alu_can",
    "cardboard",
    "paper",
    "film",
)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int32]
ImageArray = npt.NDArray[np.uint8]


def class_id(name: str) -> int:
    """Return the class id of a material class name.

    Raises:
        KeyError: if the name is not a known class.
    """
    return MATERIAL_CLASSES.index(name)


@dataclass(frozen=True, slots=True)
class TruthObject:
    """Ground truth for one object visible in a simulated frame.

    Attributes:
        object_id: unique id of the simulated object.
        class_id: index into ``MATERIAL_CLASSES``.
        box_px: axis-aligned box ``(x1, y1, x2, y2)`` in image pixels, clipped to the image.
        x_mm: lateral position of the object's centre at exposure.
        y_w_mm: along-belt world position of the centre at exposure.
        length_mm: extent along the belt (axis-aligned bounding extent).
        width_mm: extent across the belt (axis-aligned bounding extent).
        visible_fraction: fraction of the object's footprint not occluded and inside the image.
    """

    object_id: int
    class_id: int
    box_px: tuple[float, float, float, float]
    x_mm: float
    y_w_mm: float
    length_mm: float
    width_mm: float
    visible_fraction: float = 1.0


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera exposure.

    Attributes:
        image: HxWx3 BGR uint8 image. May be an empty (0x0x3) array when the
            source was asked not to render pixels (simulation with a detector
            that does not need them).
        t_capture_ns: monotonic time of exposure, taken before any processing.
        s_capture_mm: belt odometer at exposure.
        frame_index: index of the frame at the source (gaps mean frames dropped).
        camera_id: which camera produced it.
        truth: ground truth objects (simulation only), else ``None``.
        prepared: the detector's input made from ``image`` ahead of detection by
            the capture thread (``EngineDetector.prepare``), so that it overlaps
            the previous frame's inference; ``None`` when the detector makes it
            itself. Dropped once the frame has been detected on.
    """

    image: ImageArray
    t_capture_ns: int
    s_capture_mm: float
    frame_index: int
    camera_id: str = "cam0"
    truth: tuple[TruthObject, ...] | None = None
    prepared: object | None = None


@dataclass(frozen=True, slots=True)
class Detections:
    """Columnar detections of one frame, in image pixels.

    Attributes:
        boxes_px: float32 ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
        scores: float32 ``(N,)`` confidences in [0, 1].
        class_ids: int32 ``(N,)`` indices into ``MATERIAL_CLASSES``.
    """

    boxes_px: FloatArray
    scores: FloatArray
    class_ids: IntArray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @staticmethod
    def empty() -> Detections:
        return Detections(
            boxes_px=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int32),
        )


@dataclass(frozen=True, slots=True)
class BeltMeasurements:
    """Detections of one frame projected onto the belt plane (columnar).

    Attributes:
        t_capture_ns: exposure time of the frame.
        s_capture_mm: odometer at exposure.
        x_mm: ``(N,)`` lateral centre positions.
        y_w_mm: ``(N,)`` along-belt world centre positions.
        length_mm: ``(N,)`` extents along the belt.
        width_mm: ``(N,)`` extents across the belt.
        scores: ``(N,)`` detector confidences.
        class_ids: ``(N,)`` class ids.
    """

    t_capture_ns: int
    s_capture_mm: float
    x_mm: npt.NDArray[np.float64]
    y_w_mm: npt.NDArray[np.float64]
    length_mm: npt.NDArray[np.float64]
    width_mm: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]
    class_ids: IntArray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True, slots=True)
class Track:
    """A tracked object in belt-fixed coordinates.

    Attributes:
        track_id: unique, never reused within a run.
        class_id: current class by vote over the track's life.
        class_confidence: smoothed share of the score-weighted vote held by ``class_id``
            (see ``TrackerParams.class_prior_votes``).
        class_votes: accumulated (score-weighted) vote per class id.
        u_mm: belt-fixed along-belt position of the centre at ``s_ref_mm``.
        x_mm: lateral centre position at ``s_ref_mm``.
        du_per_mm: residual along-belt motion per mm of belt travel (slides/rolls).
        dx_per_mm: residual lateral motion per mm of belt travel.
        length_mm: smoothed extent along the belt.
        width_mm: smoothed extent across the belt.
        sigma_u_mm: 1-sigma uncertainty of ``u_mm`` at ``s_ref_mm``.
        sigma_x_mm: 1-sigma uncertainty of ``x_mm`` at ``s_ref_mm``.
        s_ref_mm: odometer value the state refers to (last update).
        t_first_ns: time of the first detection.
        t_last_ns: time of the last detection.
        hits: number of detections associated.
        confirmed: enough hits to act upon.
    """

    track_id: int
    class_id: int
    class_confidence: float
    class_votes: tuple[float, ...]
    u_mm: float
    x_mm: float
    du_per_mm: float
    dx_per_mm: float
    length_mm: float
    width_mm: float
    sigma_u_mm: float
    sigma_x_mm: float
    s_ref_mm: float
    t_first_ns: int
    t_last_ns: int
    hits: int
    confirmed: bool

    def predict(self, s_mm: float) -> tuple[float, float, float, float]:
        """Predict the centre when the odometer reads ``s_mm``.

        Returns:
            ``(y_w_mm, x_mm, sigma_y_mm, sigma_x_mm)``: world position of the
            centre and its 1-sigma uncertainty, growing with belt travel since
            the last update (residual-motion uncertainty).
        """
        ds = s_mm - self.s_ref_mm
        u = self.u_mm + self.du_per_mm * ds
        x = self.x_mm + self.dx_per_mm * ds
        growth = 0.01 * abs(ds)  # 1 % of travel: unmodelled slides
        sigma_y = float(np.hypot(self.sigma_u_mm, growth))
        sigma_x = float(np.hypot(self.sigma_x_mm, growth))
        return u + s_mm, x, sigma_y, sigma_x


@dataclass(frozen=True, slots=True, eq=False)
class TrackColumns(Sequence[Track]):
    """Tracks column by column: one read-only numpy array per :class:`Track` field, one element per track.

    What the tracker hands over after each update: all live tracks at the cost
    of a few array copies, where a frozen ``Track`` per track costs a few
    microseconds each and a dense belt has a hundred of them every frame. It is
    also a ``Sequence[Track]``: ``columns[k]`` builds the ``Track`` of column
    ``k`` (equal, field for field, to the one the columns were taken from), so
    a consumer reads the columns to find the few tracks it acts upon and takes
    entities of those alone. The arrays are copies nobody writes to (flagged
    read-only), so the object may be handed to other threads.

    Attributes: as in :class:`Track`, each an array of ``n`` (``class_votes``:
    ``(n, n_classes)``; ids, counts and times int64, ``confirmed`` bool).
    """

    track_id: npt.NDArray[np.int64]
    class_id: npt.NDArray[np.int64]
    class_confidence: npt.NDArray[np.float64]
    class_votes: npt.NDArray[np.float64]
    u_mm: npt.NDArray[np.float64]
    x_mm: npt.NDArray[np.float64]
    du_per_mm: npt.NDArray[np.float64]
    dx_per_mm: npt.NDArray[np.float64]
    length_mm: npt.NDArray[np.float64]
    width_mm: npt.NDArray[np.float64]
    sigma_u_mm: npt.NDArray[np.float64]
    sigma_x_mm: npt.NDArray[np.float64]
    s_ref_mm: npt.NDArray[np.float64]
    t_first_ns: npt.NDArray[np.int64]
    t_last_ns: npt.NDArray[np.int64]
    hits: npt.NDArray[np.int64]
    confirmed: npt.NDArray[np.bool_]

    @staticmethod
    def of(tracks: Iterable[Track]) -> TrackColumns:
        """The columns of ``tracks`` (returned as they are when they are columns already)."""
        if isinstance(tracks, TrackColumns):
            return tracks
        rows = list(tracks)
        n_classes = len(rows[0].class_votes) if rows else 0

        def col(name: str, dtype: type) -> Any:
            a: npt.NDArray[Any] = np.array([getattr(t, name) for t in rows], dtype)
            a.flags.writeable = False
            return a

        votes = np.array([t.class_votes for t in rows], np.float64).reshape(len(rows), n_classes)
        votes.flags.writeable = False
        f, i = np.float64, np.int64
        return TrackColumns(
            col("track_id", i), col("class_id", i), col("class_confidence", f), votes, col("u_mm", f), col("x_mm", f),
            col("du_per_mm", f), col("dx_per_mm", f), col("length_mm", f), col("width_mm", f), col("sigma_u_mm", f),
            col("sigma_x_mm", f), col("s_ref_mm", f), col("t_first_ns", i), col("t_last_ns", i), col("hits", i),
            col("confirmed", np.bool_),
        )  # fmt: skip

    def __len__(self) -> int:
        return int(self.track_id.shape[0])

    @overload
    def __getitem__(self, k: int) -> Track: ...
    @overload
    def __getitem__(self, k: slice) -> list[Track]: ...
    def __getitem__(self, k: int | slice) -> Track | list[Track]:
        """The ``Track`` of column ``k`` (a list of them for a slice), built now."""
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        return Track(
            self.track_id.item(k), self.class_id.item(k), self.class_confidence.item(k), tuple(self.class_votes[k].tolist()),
            self.u_mm.item(k), self.x_mm.item(k), self.du_per_mm.item(k), self.dx_per_mm.item(k), self.length_mm.item(k),
            self.width_mm.item(k), self.sigma_u_mm.item(k), self.sigma_x_mm.item(k), self.s_ref_mm.item(k),
            self.t_first_ns.item(k), self.t_last_ns.item(k), self.hits.item(k), self.confirmed.item(k),
        )  # fmt: skip

    def __iter__(self) -> Iterator[Track]:
        """Every track's ``Track``, built column by column (cheaper than one index at a time)."""
        return map(
            Track, self.track_id.tolist(), self.class_id.tolist(), self.class_confidence.tolist(),
            map(tuple, self.class_votes.tolist()), self.u_mm.tolist(), self.x_mm.tolist(), self.du_per_mm.tolist(),
            self.dx_per_mm.tolist(), self.length_mm.tolist(), self.width_mm.tolist(), self.sigma_u_mm.tolist(),
            self.sigma_x_mm.tolist(), self.s_ref_mm.tolist(), self.t_first_ns.tolist(), self.t_last_ns.tolist(),
            self.hits.tolist(), self.confirmed.tolist(),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class FireCommand:
    """Open a contiguous range of valves between two odometer positions.

    Positions are the valve *command* positions: the planner has already
    subtracted the valve lead (belt speed x valve latency), so a controller
    switches the valves exactly when its odometer reaches them.

    Attributes:
        command_id: unique per run, also the idempotency key on the wire.
        track_id: the object this shot is for.
        valve_first: first valve index (0-based, inclusive).
        valve_last: last valve index (inclusive).
        s_open_mm: odometer value at which to open.
        s_close_mm: odometer value at which to close.
        s_target_mm: odometer value at which the object's centre is predicted
            on the ejection line (diagnostics and scoring).
        class_id: class of the target.
        t_issue_ns: host time at which the command was issued.
    """

    command_id: int
    track_id: int
    valve_first: int
    valve_last: int
    s_open_mm: float
    s_close_mm: float
    s_target_mm: float
    class_id: int
    t_issue_ns: int


@dataclass(frozen=True, slots=True)
class PickCommand:
    """Pick an object with a robot at a given odometer stamp.

    Attributes:
        command_id: unique per run.
        track_id: the object.
        x_mm: lateral pick point.
        u_mm: belt-fixed along-belt pick point (where the object is predicted to
            be, including its residual motion, at ``s_pick_mm``).
        s_pick_mm: odometer value at which the gripper must close on the object;
            the pick happens at world ``y_w_mm = u_mm + s_pick_mm``.
        class_id: class of the object.
        value: value used by the planner when choosing among targets.
        t_issue_ns: host time at which the command was issued.
    """

    command_id: int
    track_id: int
    x_mm: float
    u_mm: float
    s_pick_mm: float
    class_id: int
    value: float
    t_issue_ns: int


Command = FireCommand | PickCommand


@dataclass(frozen=True, slots=True)
class CommandReport:
    """What an actuator reports back about a command.

    Attributes:
        command_id: the command.
        status: ``"accepted"``, ``"executed"``, ``"late"`` (refused, would be
            late), ``"rejected"`` (bad field, queue full...), ``"cancelled"``.
        s_actual_mm: odometer at which it was executed (``executed`` only).
        detail: free text reason.
    """

    command_id: int
    status: str
    s_actual_mm: float | None = None
    detail: str = ""
