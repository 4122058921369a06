"""Parameters and output of the belt-frame tracker (plain frozen dataclasses).

The runtime maps the ``tracker:`` config section onto :class:`TrackerParams`;
this package never imports the config schema (DESIGN.md section 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from sorter.entities import MATERIAL_CLASSES, Track, TrackColumns


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """Settings of :class:`sorter.track.BeltTracker`.

    Distances are belt-plane millimetres; "travel" is belt odometer travel.

    Attributes:
        gate_mm: hard association radius around a track's predicted centre
            (belt-fixed, after the size slack described in ``tracker.py``).
        min_hits: detections that always confirm a track (acted upon), however
            little the belt moved between them; the upper bound of the evidence
            needed. At 60 fps on a running belt this rule confirms nearly every
            track; the rules below take over when frames are few.
        confirm_hits: detections in consecutive frames that confirm a track once
            they span at least ``confirm_travel_mm`` of belt travel. A loaded
            machine processing 4-15 frames per second sees an object crossing
            the view only two or three times; two views of one belt-fixed
            position far apart in travel, with no frame in between that missed
            it, are the evidence that it rides the belt. A track missed in a
            frame starts a new run. Values at or above ``min_hits`` disable the
            rule.
        confirm_travel_mm: belt travel the run of ``confirm_hits`` detections
            must span (first to latest). More than ``gate_mm``, so an artefact
            fixed in the image (glare, a machine part), which moves by the travel
            in belt-fixed coordinates, never gates twice over it; more than a
            frame step at 60 fps (42 mm at 2.5 m/s), so there ``min_hits``
            decides as before and a run of two random false positives cannot
            confirm; less than a frame step at 15 fps (167 mm), so two views
            confirm. Belt speeds down to 1.8 m/s keep that at 15 fps.
        confirm_single_score: a detection with at least this score confirms its
            track at once, or ``None`` (the default) to never confirm on a single
            view. For very low frame rates with a detector whose high scores are
            known to be reliable; every false positive above it is acted upon.
        confirm_needs_full_view: a track is confirmed only once one of its
            boxes was a full view, not cut at an end of the camera view (with
            ``view_y_min_mm``/``view_y_max_mm`` set). An object entering the
            view shows a growing part of itself; when those boxes start a track
            that the first full view does not continue (the centre jumped), the
            cut-only track would otherwise be confirmed, retired a few frames
            later and acted upon at a position where no object is.
        max_unseen_ns: a track not detected for this long is retired (a stopped
            belt still ages its tracks). Every limit on unseen time or travel is
            at least one frame step (the time and travel since the previous
            update): a track seen in the previous frame always gets this frame
            to be seen again, however slowly frames come.
        max_unseen_travel_mm: a track not detected over this much belt travel is
            retired (a fast belt retires tracks sooner than ``max_unseen_ns``).
        measurement_sigma_mm: 1-sigma noise of a measured centre, per axis.
        residual_process_sigma: 1-sigma of unmodelled residual motion, in mm of
            position per mm of travel (dimensionless). It grows a track's
            position uncertainty linearly with travel, as ``Track.predict`` does,
            and is how much the residual velocity may change over
            ``residual_change_travel_mm`` of travel.
        n_classes: number of class ids the detector can emit.
        residual_change_travel_mm: travel over which the residual velocity may
            drift by one ``residual_process_sigma`` (random walk).
        initial_residual_sigma: prior 1-sigma of a new track's residual velocity
            (mm per mm of travel); 0.02 is a 50 mm/s slide on a 2.5 m/s belt.
            Raise it for slow belts, where the same slide is a larger share
            of the travel; a larger prior makes the estimate noisier.
        max_residual_per_mm: clamp of the residual velocity estimate: nothing
            slides faster than this fraction of the belt travel.
        gate_chi2: gate on the normalised squared distance (2 degrees of freedom);
            25 (five sigma) keeps true pairs through noisy velocity estimates
            while rejecting a touching neighbour.
        size_tolerance_mm: change of a measured extent attributed to noise; a
            larger change is treated as truncation (image border, occlusion).
        max_cut_fraction: largest share of a tracked extent a measured box may
            have lost to the image border or an occluding object; detectors
            rarely report objects less than 40 % visible, so a box shrunk more
            than that is not taken for a cut view of the track.
        view_y_min_mm: upstream end of the camera view (world ``y_w_mm``), or
            ``None`` if unknown. A box reaching it is cut there (the object is
            entering), which tells the tracker on which side to correct.
        view_y_max_mm: downstream end of the camera view, or ``None``.
        view_edge_margin_mm: a box edge this close to a view end counts as
            reaching it (box noise, lens distortion bending the image border).
        size_log_sigma: 1-sigma of the log ratio of measured to tracked extents
            in the association cost.
        class_weight: weight of the class-disagreement term in the cost.
        tentative_penalty: cost added for tentative tracks, so that a confirmed
            track wins a detection over a young (possibly false) track.
        min_residual_per_mm: smallest residual velocity (mm per mm of travel)
            reported in ``Track.du_per_mm``/``dx_per_mm``; below it the object is
            taken as lying still. On the simulated line the estimate on still
            objects reaches |du| 0.004 at p90 (noise, box truncation), while
            sliding objects reach 0.016; extrapolating that noise over the
            ~840 mm to the ejection line cost up to 6 mm. The filter keeps its
            own estimate; only what is reported is thresholded.
        class_prior_votes: pseudo-vote (in units of detection score) every class
            starts with when ``Track.class_confidence`` is computed: the
            confidence is the smoothed share ``(votes[c] + prior) / (sum(votes) +
            n_classes * prior)``. With 0.2 and six classes one detection at 0.5
            gives 0.41 and two consistent ones 0.55, so a single weak view is
            never acted upon while a class the detector names again and again is,
            whatever the detector's absolute score level.
        tentative_max_unseen_travel_mm: a tentative track not detected again
            within this travel is retired (false positives rarely repeat at the
            same belt position; a real object is seen every ~40 mm of travel,
            so 250 mm survives a gap of five frames at 2.5 m/s).
            Capped by ``max_unseen_travel_mm``.
    """

    gate_mm: float = 80.0
    min_hits: int = 3
    confirm_hits: int = 2
    confirm_travel_mm: float = 120.0
    confirm_single_score: float | None = None
    confirm_needs_full_view: bool = True
    max_unseen_ns: int = 400_000_000
    max_unseen_travel_mm: float = 400.0
    measurement_sigma_mm: float = 4.0
    residual_process_sigma: float = 0.01
    n_classes: int = len(MATERIAL_CLASSES)
    residual_change_travel_mm: float = 1000.0
    initial_residual_sigma: float = 0.02
    max_residual_per_mm: float = 0.25
    gate_chi2: float = 25.0
    size_tolerance_mm: float = 8.0
    max_cut_fraction: float = 0.6
    view_y_min_mm: float | None = None
    view_y_max_mm: float | None = None
    view_edge_margin_mm: float = 10.0
    size_log_sigma: float = 0.35
    class_weight: float = 0.5
    tentative_penalty: float = 1.0
    tentative_max_unseen_travel_mm: float = 250.0
    min_residual_per_mm: float = 0.004
    class_prior_votes: float = 0.2

    def __post_init__(self) -> None:
        problems: list[str] = []
        positive = {
            "gate_mm": self.gate_mm,
            "max_unseen_travel_mm": self.max_unseen_travel_mm,
            "measurement_sigma_mm": self.measurement_sigma_mm,
            "residual_change_travel_mm": self.residual_change_travel_mm,
            "initial_residual_sigma": self.initial_residual_sigma,
            "max_residual_per_mm": self.max_residual_per_mm,
            "gate_chi2": self.gate_chi2,
            "size_log_sigma": self.size_log_sigma,
            "tentative_max_unseen_travel_mm": self.tentative_max_unseen_travel_mm,
            "max_cut_fraction": self.max_cut_fraction,
        }
        problems += [f"TrackerParams.{k} = {v!r} must be > 0" for k, v in positive.items() if not v > 0]
        non_negative = {
            "residual_process_sigma": self.residual_process_sigma,
            "size_tolerance_mm": self.size_tolerance_mm,
            "class_weight": self.class_weight,
            "view_edge_margin_mm": self.view_edge_margin_mm,
            "tentative_penalty": self.tentative_penalty,
            "min_residual_per_mm": self.min_residual_per_mm,
            "confirm_travel_mm": self.confirm_travel_mm,
        }
        problems += [f"TrackerParams.{k} = {v!r} must be >= 0" for k, v in non_negative.items() if not v >= 0]
        for name, hits in (("min_hits", self.min_hits), ("confirm_hits", self.confirm_hits)):
            if hits < 1:
                problems.append(f"TrackerParams.{name} = {hits} must be >= 1")
        if self.confirm_single_score is not None and not 0.0 < self.confirm_single_score <= 1.0:
            problems.append(
                f"TrackerParams.confirm_single_score = {self.confirm_single_score!r} must be in (0, 1], or None to disable it"
            )
        if self.max_unseen_ns <= 0:
            problems.append(f"TrackerParams.max_unseen_ns = {self.max_unseen_ns} must be > 0 (e.g. 400_000_000 for 400 ms)")
        if not 0.0 < self.class_prior_votes <= 100.0:
            problems.append(f"TrackerParams.class_prior_votes = {self.class_prior_votes!r} must be within (0, 100]")
        if self.n_classes < 1:
            problems.append(f"TrackerParams.n_classes = {self.n_classes} must be >= 1")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class TrackerOutput:
    """Result of one :meth:`BeltTracker.update`.

    Attributes:
        active: every live track after the update, tentative ones included
            (``confirmed`` says which may be acted upon), oldest first, as
            read-only columns (a ``Sequence[Track]`` that builds each ``Track``
            when asked for it).
        retired: tracks that ended in this update because they went unseen for
            ``max_unseen_ns`` or ``max_unseen_travel_mm``; tentative ones are
            reported too (``confirmed=False``) so callers can count false tracks.
        meas_track_ids: the track id each measurement of the frame went to, in
            measurement order (a new track's id for one that started a track);
            for overlays, the event log and evaluation.
    """

    active: TrackColumns
    retired: tuple[Track, ...]
    meas_track_ids: tuple[int, ...] = ()


class UpdateStats(NamedTuple):
    """Work done by one :meth:`BeltTracker.update` (deterministic counters).

    The time an update takes is proportional to these counts (plus a fixed
    cost), so they tell how the tracker scales on a scene without timing it:
    ``scripts/bench_tracker.py`` measures the time, tests check the counts.

    Attributes:
        n_tracks: live tracks offered to association (after retirement).
        n_measurements: measurements of the frame.
        n_pairs: (track, measurement) pairs inside the gate, each given a cost.
        n_solved: pairs left to the assignment solver (those not unambiguous).
        n_matched: measurements fused into existing tracks.
        n_new: tracks started.
        n_retired: tracks retired (the only ``Track`` entities an update builds).
    """

    n_tracks: int = 0
    n_measurements: int = 0
    n_pairs: int = 0
    n_solved: int = 0
    n_matched: int = 0
    n_new: int = 0
    n_retired: int = 0
