"""One finished track of the sorting line, as stored by the event store.

A :class:`TrackEvent` is made once per track when the tracker retires it, and
is the only thing the analytics side ever sees of the hot path. It is a flat
frozen record (no numpy, no references into tracker state) so that it can be
queued across threads and written as one SQLite row without copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Column names in the order of :meth:`TrackEvent.to_row` (the SQLite ``events`` columns, less ``id``).
COLUMNS: tuple[str, ...] = (
    "t_wall_ns",
    "t_first_seen_ns",
    "t_last_seen_ns",
    "track_id",
    "class_name",
    "confidence",
    "length_mm",
    "width_mm",
    "x_mm",
    "u_mm",
    "n_detections",
    "decision",
    "command_ids",
    "outcome",
)

#: One stored row: the fields of a TrackEvent, ``command_ids`` as comma-separated text.
Row = tuple[int, int, int, int, str, float, float, float, float, float, int, str, str, str | None]


@dataclass(frozen=True, slots=True)
class TrackEvent:
    """What happened to one object on the belt.

    Attributes:
        t_wall_ns: wall-clock time (``time.time_ns()``, UTC epoch ns) when the track finished; the only
            wall-clock stamp, kept so that events can be queried by calendar time across restarts.
        t_first_seen_ns: monotonic ns of the first frame capture in which the object was detected.
        t_last_seen_ns: monotonic ns of the last frame capture in which it was detected. Monotonic stamps
            are only comparable within one run of the service (one boot of the host).
        track_id: the tracker's id; unique within a run, reused after a restart.
        class_name: the voted class (e.g. ``"PET"``).
        confidence: the class vote's confidence, 0..1.
        length_mm: object size along the belt.
        width_mm: object size across the belt.
        x_mm: lateral position on the belt (across, from the belt frame's origin).
        u_mm: belt-fixed coordinate along the belt (``y_w_mm - s_capture_mm``, see DESIGN section 1).
        n_detections: number of detections merged into the track.
        decision: what the planner decided, free text (``"eject"``, ``"pass"``, ``"too_small"``, ``"late"``...).
        command_ids: ids of the fire/pick commands issued for this object (empty when none).
        outcome: what the controller reported (``"executed"``, ``"late"``, ``"rejected"``...); None when unknown.
    """

    t_wall_ns: int
    t_first_seen_ns: int
    t_last_seen_ns: int
    track_id: int
    class_name: str
    confidence: float
    length_mm: float
    width_mm: float
    x_mm: float
    u_mm: float
    n_detections: int
    decision: str
    command_ids: tuple[int, ...] = ()
    outcome: str | None = None

    def to_row(self) -> Row:
        """Return the values in :data:`COLUMNS` order, ready for ``sqlite3`` parameters.

        ``command_ids`` becomes comma-separated decimal text (``"12,13"``, ``""`` for none): readable in
        the ``sqlite3`` shell and in SQL ``LIKE`` queries, without a child table for a rarely queried list.
        """
        return (
            int(self.t_wall_ns),
            int(self.t_first_seen_ns),
            int(self.t_last_seen_ns),
            int(self.track_id),
            str(self.class_name),
            float(self.confidence),
            float(self.length_mm),
            float(self.width_mm),
            float(self.x_mm),
            float(self.u_mm),
            int(self.n_detections),
            str(self.decision),
            ",".join(str(int(c)) for c in self.command_ids),
            None if self.outcome is None else str(self.outcome),
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> TrackEvent:
        """Inverse of :meth:`to_row`; ``row`` holds the :data:`COLUMNS` values in order.

        Raises:
            ValueError: the row has the wrong number of values or a malformed ``command_ids``.
        """
        if len(row) != len(COLUMNS):
            raise ValueError(f"a TrackEvent row has {len(COLUMNS)} values ({', '.join(COLUMNS)}), got {len(row)}")
        ids_text = str(row[12] or "")
        return cls(
            t_wall_ns=int(row[0]),
            t_first_seen_ns=int(row[1]),
            t_last_seen_ns=int(row[2]),
            track_id=int(row[3]),
            class_name=str(row[4]),
            confidence=float(row[5]),
            length_mm=float(row[6]),
            width_mm=float(row[7]),
            x_mm=float(row[8]),
            u_mm=float(row[9]),
            n_detections=int(row[10]),
            decision=str(row[11]),
            command_ids=tuple(int(c) for c in ids_text.split(",")) if ids_text else (),
            outcome=None if row[13] is None else str(row[13]),
        )
