"""What a simulated run leaves behind for the miss taxonomy: truth seen per frame, tracks, decisions, commands.

Plain frozen records, filled while the line runs (``sorter.runtime.explain_recorder``)
or built by hand in tests, and read by :func:`sorter.sim.explain.explain_run`
together with the plant's own records (:class:`~sorter.sim.records.ObjectFate`,
:class:`~sorter.sim.records.PulseRecord`, :class:`~sorter.sim.records.PickRecord`).
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sorter.sim.records import ObjectFate, PickRecord, PulseRecord

#: The fixed list of primary causes, upstream first (the order in which a cause is looked for).
CAUSES: tuple[str, ...] = (
    "not_visible",
    "never_detected",
    "not_confirmed_in_time",
    "wrong_class",
    "track_lost_or_swapped",
    "fire_position_off",
    "actuator_busy_or_rate_limited",
    "commanded_late_or_dropped",
    "other",
)

Cause = Literal[
    "not_visible",
    "never_detected",
    "not_confirmed_in_time",
    "wrong_class",
    "track_lost_or_swapped",
    "fire_position_off",
    "actuator_busy_or_rate_limited",
    "commanded_late_or_dropped",
    "other",
]

Kind = Literal["target_missed", "nontarget_removed"]


@dataclass(frozen=True, slots=True)
class Sighting:
    """One true object in one processed frame.

    Attributes:
        frame_index: the frame.
        visible_fraction: share of its footprint not hidden and inside the image.
        track_id: the track its matched detection went to, 0 when no detection matched it.
        det_class_id: class of the matched detection, -1 when none.
        det_score: score of the matched detection, 0 when none.
    """

    frame_index: int
    visible_fraction: float
    track_id: int = 0
    det_class_id: int = -1
    det_score: float = 0.0


@dataclass(frozen=True, slots=True)
class TrackNote:
    """What the tracker did with one track id.

    Attributes:
        track_id: the track.
        first_frame: frame of its first detection.
        confirmed_frame: first frame after which it was confirmed, ``None`` if never.
        last_frame: last frame in which it was live.
    """

    track_id: int
    first_frame: int
    confirmed_frame: int | None
    last_frame: int


@dataclass(frozen=True, slots=True)
class DecisionNote:
    """The planner's one decision about a track (see ``sorter.schedule.results.Decision``).

    Attributes:
        track_id: the track.
        action: ``eject``, ``pick``, ``skip``, ``late`` or ``not_target``.
        reason: the planner's why.
        class_id: the track's class when decided.
        class_confidence: its class confidence then.
        frame_index: frame whose cycle took the decision.
        command_id: the command issued, if any.
    """

    track_id: int
    action: str
    reason: str
    class_id: int
    class_confidence: float
    frame_index: int
    command_id: int | None = None


@dataclass(frozen=True, slots=True)
class CommandNote:
    """A command the planner issued.

    Attributes:
        command_id: the command.
        track_id: the track it acts on.
        frame_index: frame whose cycle issued it.
        s_mm: its odometer stamp (opening position of a shot, pick position of a pick).
    """

    command_id: int
    track_id: int
    frame_index: int
    s_mm: float


@dataclass(frozen=True, slots=True)
class RunHistory:
    """Everything :func:`sorter.sim.explain.explain_run` needs about one simulated run.

    Attributes:
        target_class_ids: the classes the run sorted out.
        fates: every decided object fate (only ``counted`` ones are judged, as the scoreboard does).
        sightings: object id -> its sightings in processed frames, in frame order.
        tracks: track id -> what the tracker did with it.
        decisions: track id -> the planner's decision.
        commands: command id -> the command issued.
        pulses: command id -> the executed valve pulse (air-jet lines).
        picks: command id -> the executed pick attempt (robot lines).
        class_names: class names by id (for the text).
    """

    target_class_ids: frozenset[int]
    fates: Sequence[ObjectFate]
    sightings: Mapping[int, Sequence[Sighting]]
    tracks: Mapping[int, TrackNote]
    decisions: Mapping[int, DecisionNote]
    commands: Mapping[int, CommandNote]
    pulses: Mapping[int, PulseRecord] = field(default_factory=dict)
    picks: Mapping[int, PickRecord] = field(default_factory=dict)
    class_names: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Attribution:
    """The one primary cause of one sorting failure.

    Attributes:
        object_id: the true object.
        class_id: its true class.
        kind: ``target_missed`` (a target that passed) or ``nontarget_removed`` (ejected or picked).
        cause: one of :data:`CAUSES`.
        detail: what exactly happened, in words.
        first_frame: first processed frame showing it (-1 when none did).
        last_frame: last processed frame showing it (-1 when none did).
        track_id: the track judged (0 when none).
        command_id: the command judged, if any.
        max_visible_fraction: the most of it any frame showed.
        tag: for ``other``, which kind: ``policy`` (size or confidence limits), ``skipped`` (touching
            rule, out of reach), ``neighbour`` (blown off with a well-aimed touching target),
            ``false_positive`` (a track with no object behind it), ``unknown_command``, ``decision``.
    """

    object_id: int
    class_id: int
    kind: Kind
    cause: Cause
    detail: str
    first_frame: int
    last_frame: int
    track_id: int = 0
    command_id: int | None = None
    max_visible_fraction: float = 0.0
    tag: str = ""
