"""Belt-frame multi-object tracker.

Association happens in belt-fixed coordinates: a measurement at world
``y_w_mm`` taken when the odometer read ``s_capture_mm`` lies at
``u_mm = y_w_mm - s_capture_mm``, and every track is predicted (with its
residual motion) to that same odometer value. Time plays no part in where
things are, so belt speed changes and stops do not disturb association; time
only ages tracks (a stopped belt still retires a track nobody sees).

One update: retire tracks unseen for too long, predict every track
(``motion.py``), gate every (track, measurement) pair and cost the ambiguous
ones (``gate.py``), assign (``assign.py``), correct the matched tracks and start
new ones (``state.py``), and copy the tracks out as read-only columns
(:class:`~sorter.entities.TrackColumns`: consumers build ``Track`` entities of
the few tracks they act upon). Every step works on all tracks, all
measurements or all gated pairs at once (numpy arrays, no loop over tracks):
an update costs a fixed number of numpy calls whatever the scene, plus one
``Track`` per retired track. :attr:`BeltTracker.stats` counts the work of the
last update.

A track is confirmed (may be acted upon) on evidence, not on a frame count:
``min_hits`` detections, or ``confirm_hits`` detections in consecutive frames
spanning ``confirm_travel_mm`` of belt travel (an object seen twice by a slow
loop), or optionally one detection scoring ``confirm_single_score`` (see
``params.py``); and, where the view ends are known, only once one of its boxes
was not cut at an end of the view (``confirm_needs_full_view``): a track made
of an entering object's growing boxes alone, left behind when the first full
view jumped, is never acted upon.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from sorter.entities import BeltMeasurements, Track
from sorter.track.assign import load_solver, match_pairs
from sorter.track.gate import MEAS_CUT, MEAS_SIZE, MEAS_Z, N_MEAS, gate_pairs, pair_costs
from sorter.track.motion import edge_cut_dir
from sorter.track.params import TrackerOutput, TrackerParams, UpdateStats
from sorter.track.state import CONFIRMED, ID, S_REF, T_LAST, TrackTable

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_MIN_EXTENT_MM = 1.0
_NONE = np.zeros(0, np.int64)


class BeltTracker:
    """Tracks objects on the belt from per-frame belt-plane measurements.

    Not thread-safe: call :meth:`update` from one thread, once per frame, with
    frames in capture order.

    Attributes:
        stats: work counters of the last :meth:`update`.
    """

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        self._table = TrackTable(self.params)
        self._next_id = 1
        self._last_s_mm: float | None = None
        self._last_t_ns: int | None = None
        self.stats = UpdateStats()
        self._columns = self._table.columns()  # the tracks as the last update handed them out
        p = self.params
        tentative_mm = min(p.tentative_max_unseen_travel_mm, p.max_unseen_travel_mm)
        self._max_unseen_travel_mm = np.array((tentative_mm, p.max_unseen_travel_mm))  # by confirmation: 0 tentative, 1 confirmed
        load_solver()  # import the solver at start-up, not in the first frame with touching objects

    @property
    def n_live(self) -> int:
        """Number of live tracks (tentative included)."""
        return len(self._table)

    def update(self, meas: BeltMeasurements) -> TrackerOutput:
        """Fuse one frame's measurements and age the tracks.

        Args:
            meas: the frame's detections on the belt plane, stamped with the
                exposure time and odometer.

        Returns:
            Live tracks after the update and the tracks retired by it.

        Raises:
            ValueError: if a class id is outside ``[0, n_classes)`` or the
                measurement arrays have different lengths.
        """
        p = self.params
        s_mm = float(meas.s_capture_mm)
        t_ns = int(meas.t_capture_ns)
        self._check(meas, s_mm)
        t_prev_ns = self._last_t_ns
        self._last_s_mm, self._last_t_ns = s_mm, t_ns
        table = self._table
        retired = self._retire(s_mm, t_ns, t_prev_ns)

        n_meas = len(meas)
        n_tracks = len(table)
        y_w = np.asarray(meas.y_w_mm, np.float64)
        m_tab = np.empty((N_MEAS, n_meas))  # the gate's MEAS_* rows
        z = m_tab[MEAS_Z]  # (2, M): belt-fixed centres (u_mm, x_mm)
        np.subtract(y_w, s_mm, out=z[0])
        z[1] = meas.x_mm
        size = m_tab[MEAS_SIZE]  # (2, M): extents
        size[0] = meas.length_mm
        size[1] = meas.width_mm
        np.maximum(size, _MIN_EXTENT_MM, out=size)
        scores = np.asarray(meas.scores, np.float64)
        class_ids = np.asarray(meas.class_ids)

        matched_t = matched_m = _NONE
        n_pairs = n_solved = 0
        if n_meas:
            edge_cut_dir(y_w, size[0], p, out=m_tab[MEAS_CUT])
        if n_tracks and n_meas:
            pred = table.predict(s_mm)
            pairs = gate_pairs(pred, m_tab, p)
            n_pairs = pairs.size

            def costs(idx: I64) -> F64:
                return pair_costs(idx, pairs, pred, table.votes, table.i[CONFIRMED], m_tab, class_ids, p)

            idx, n_solved = match_pairs(pairs.rows, pairs.cols, n_tracks, n_meas, costs)
            if idx is None:  # every gated pair matched
                matched_t, matched_m, pair_table = pairs.rows, pairs.cols, pairs.table
            else:
                matched_t, matched_m, pair_table = pairs.rows.take(idx), pairs.cols.take(idx), pairs.table.take(idx, 1)
            table.correct(
                matched_t,
                pred.take(matched_t, 1),
                pair_table,
                s_mm,
                t_ns,
                t_prev_ns,
                scores.take(matched_m),
                class_ids.take(matched_m),
            )
        meas_ids = np.zeros(n_meas, np.int64)  # 0 (no track id) until matched or started
        meas_ids[matched_m] = table.i[ID].take(matched_t)
        n_new = n_meas - matched_m.size
        if n_new:
            idx_new = (meas_ids == 0).nonzero()[0]
            ids = np.arange(self._next_id, self._next_id + n_new, dtype=np.int64)
            self._next_id += n_new
            meas_ids[idx_new] = ids
            m_new = m_tab.take(idx_new, 1)
            full_view = m_new[MEAS_CUT] == 0
            table.append(
                ids, s_mm, t_ns, m_new[MEAS_Z], m_new[MEAS_SIZE], scores.take(idx_new), class_ids.take(idx_new), full_view
            )
        self.stats = UpdateStats(
            n_tracks=n_tracks,
            n_measurements=n_meas,
            n_pairs=n_pairs,
            n_solved=n_solved,
            n_matched=int(matched_m.size),
            n_new=n_new,
            n_retired=len(retired),
        )
        self._columns = table.columns()
        return TrackerOutput(active=self._columns, retired=retired, meas_track_ids=tuple(meas_ids.tolist()))

    # ------------------------------------------------------------------ steps
    def _check(self, meas: BeltMeasurements, s_mm: float) -> None:
        n = len(meas)
        lengths = {a.shape[0] for a in (meas.x_mm, meas.y_w_mm, meas.length_mm, meas.width_mm, meas.class_ids)}
        if lengths - {n}:
            raise ValueError(
                f"BeltMeasurements arrays have different lengths ({sorted(lengths | {n})}); "
                "build every column from the same detections"
            )
        if n and (int(np.minimum.reduce(meas.class_ids)) < 0 or int(np.maximum.reduce(meas.class_ids)) >= self.params.n_classes):
            raise ValueError(
                f"class ids {sorted(set(meas.class_ids.tolist()))} outside [0, {self.params.n_classes}); "
                "set TrackerParams.n_classes to the detector's number of classes"
            )
        if self._last_s_mm is not None and s_mm < self._last_s_mm - 1e-6:
            logger.warning("odometer went backwards (%.1f -> %.1f mm); check the encoder direction", self._last_s_mm, s_mm)

    def _retire(self, s_mm: float, t_ns: int, t_prev_ns: int | None) -> tuple[Track, ...]:
        """Remove tracks unseen for too long (time) or too far (belt travel).

        A track detected in the previous frame is never retired: it gets this
        frame to be seen again, however long the step from that frame (a slow
        loop, dropped frames). The limits count beyond that step.
        """
        table = self._table
        if not len(table):
            return ()
        p = self.params
        ii = table.i
        t_last = ii[T_LAST]
        max_travel = self._max_unseen_travel_mm.take(ii[CONFIRMED])  # by confirmation: tentative, confirmed
        aged = np.subtract(s_mm, table.f[S_REF]) > max_travel
        aged |= t_last < t_ns - p.max_unseen_ns
        if t_prev_ns is not None:
            aged &= t_last != t_prev_ns
        if not np.count_nonzero(aged):
            return ()
        # unchanged since the last update handed them out: their entities come from those columns
        out = tuple(map(self._columns.__getitem__, aged.nonzero()[0].tolist()))
        table.remove(~aged)
        return out
