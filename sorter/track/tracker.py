"""Belt-frame multi-object tracker.

Association happens in belt-fixed coordinates: a measurement at world
``y_w_mm`` taken when the odometer read ``s_capture_mm`` lies at
``u_mm = y_w_mm - s_capture_mm``, and every track is predicted (with its
residual motion) to that same odometer value. Time plays no part in where
things are, so belt speed changes and stops do not disturb association; time
only ages tracks (a stopped belt still retires a track nobody sees).

Cost of pairing track ``t`` with measurement ``m`` (only pairs inside the gate):

* negative log-likelihood of the position: ``log(S_u S_x / sigma^4)`` plus the
  normalised squared distance ``du^2 / S_u + dx^2 / S_x`` where ``S`` is the
  predicted track variance plus the measurement variance. Where an extent
  changed by more than ``size_tolerance_mm`` the box may have been cut (image
  border, overlapping object), shifting its centre by half the cut; the
  distance is then the smaller of "shifted by half the cut" and "not shifted,
  with more spread" (see ``state.cut_aware_distance2``); a box reaching an
  end of the camera view (``TrackerParams.view_y_min_mm``/``view_y_max_mm``)
  is cut on that side, so there the shift is known. The log term makes
  a vague young track pay for its wide prediction;
* a size term: squared log ratios of length and width over ``size_log_sigma``;
* a class term: ``-class_weight * log`` of the track's smoothed vote share for
  the measured class;
* ``tentative_penalty`` for unconfirmed tracks.

The gate is both a hard radius (``gate_mm``) and ``gate_chi2`` on the
normalised distance. Unambiguous pairs match directly; touching and crossing
objects are solved exactly per connected component (see ``assign.py``).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from sorter.entities import BeltMeasurements, Track
from sorter.track.assign import assign_pairs
from sorter.track.params import TrackerOutput, TrackerParams
from sorter.track.state import (
    CONFIRMED,
    ID,
    S_REF,
    SIZE,
    T_LAST,
    TrackTable,
    cut_aware_distance2,
    cut_half_mm,
    edge_cut_dir,
    known_cut_shift,
)

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_VOTE_PRIOR = 0.5  # pseudo-votes per class when scoring class agreement
_SIZE_COST_CAP = 25.0  # bounded so one odd box cannot dominate the whole assignment
_MIN_EXTENT_MM = 1.0


class BeltTracker:
    """Tracks objects on the belt from per-frame belt-plane measurements.

    Not thread-safe: call :meth:`update` from one thread, once per frame, with
    frames in capture order.
    """

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        self._table = TrackTable(self.params)
        self._next_id = 1
        self._last_s_mm: float | None = None

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
        s_mm = float(meas.s_capture_mm)
        t_ns = int(meas.t_capture_ns)
        self._check(meas, s_mm)
        table = self._table
        retired = self._retire(s_mm, t_ns)

        n_meas = len(meas)
        z_u = np.asarray(meas.y_w_mm, np.float64) - s_mm
        z_x = np.asarray(meas.x_mm, np.float64)
        length = np.maximum(np.asarray(meas.length_mm, np.float64), _MIN_EXTENT_MM)
        width = np.maximum(np.asarray(meas.width_mm, np.float64), _MIN_EXTENT_MM)
        scores = np.asarray(meas.scores, np.float64)
        class_ids = np.asarray(meas.class_ids, np.int32)
        cut_dir = edge_cut_dir(z_u + s_mm, length, self.params)

        matched_t = np.zeros(0, np.int64)
        matched_m = np.zeros(0, np.int64)
        if len(table) and n_meas:
            predicted = table.predict(s_mm)
            rows, cols, cost = self._candidate_pairs(s_mm, predicted, z_u, z_x, length, width, class_ids, cut_dir)
            matched_t, matched_m = assign_pairs(rows, cols, cost, len(table), n_meas)
            table.correct(
                matched_t,
                predicted,
                s_mm,
                t_ns,
                z_u[matched_m],
                z_x[matched_m],
                length[matched_m],
                width[matched_m],
                scores[matched_m],
                class_ids[matched_m],
                cut_dir[matched_m],
            )
        meas_ids = np.zeros(n_meas, np.int64)
        meas_ids[matched_m] = table.i[matched_t, ID]
        if n_meas > matched_m.size:
            new = np.ones(n_meas, np.bool_)
            new[matched_m] = False
            idx = np.flatnonzero(new)
            ids = np.arange(self._next_id, self._next_id + idx.size, dtype=np.int64)
            self._next_id += idx.size
            meas_ids[idx] = ids
            table.append(ids, s_mm, t_ns, z_u[idx], z_x[idx], length[idx], width[idx], scores[idx], class_ids[idx])
        return TrackerOutput(active=tuple(table.to_tracks()), retired=tuple(retired), meas_track_ids=tuple(meas_ids.tolist()))

    # ------------------------------------------------------------------ steps
    def _check(self, meas: BeltMeasurements, s_mm: float) -> None:
        n = len(meas)
        lengths = {a.shape[0] for a in (meas.x_mm, meas.y_w_mm, meas.length_mm, meas.width_mm, meas.class_ids)}
        if lengths - {n}:
            raise ValueError(
                f"BeltMeasurements arrays have different lengths ({sorted(lengths | {n})}); "
                "build every column from the same detections"
            )
        if n and (int(meas.class_ids.min()) < 0 or int(meas.class_ids.max()) >= self.params.n_classes):
            raise ValueError(
                f"class ids {sorted(set(meas.class_ids.tolist()))} outside [0, {self.params.n_classes}); "
                "set TrackerParams.n_classes to the detector's number of classes"
            )
        if self._last_s_mm is not None and s_mm < self._last_s_mm - 1e-6:
            logger.warning("odometer went backwards (%.1f -> %.1f mm); check the encoder direction", self._last_s_mm, s_mm)
        self._last_s_mm = s_mm

    def _retire(self, s_mm: float, t_ns: int) -> list[Track]:
        """Remove tracks unseen for too long (time) or too far (belt travel)."""
        table = self._table
        if not len(table):
            return []
        p = self.params
        travel = s_mm - table.f[:, S_REF]
        tentative = min(p.tentative_max_unseen_travel_mm, p.max_unseen_travel_mm)
        max_travel = np.where(table.i[:, CONFIRMED] == 1, p.max_unseen_travel_mm, tentative)
        aged = ((t_ns - table.i[:, T_LAST]) > p.max_unseen_ns) | (travel > max_travel)
        if not aged.any():
            return []
        gone = table.to_tracks(np.flatnonzero(aged))
        table.remove(~aged)
        return gone

    def _candidate_pairs(
        self,
        s_mm: float,
        predicted: tuple[F64, F64, F64, F64],
        z_u: F64,
        z_x: F64,
        length: F64,
        width: F64,
        class_ids: npt.NDArray[np.int32],
        cut_dir: F64,
    ) -> tuple[I64, I64, F64]:
        """Gated (track, measurement) pairs and their association costs.

        Pair quantities are ``(K, 2)`` arrays, column 0 along the belt and
        column 1 across it, so each step serves both axes at once.
        """
        p = self.params
        table = self._table
        pos, var = predicted[0], predicted[1]
        t_size = table.f[:, SIZE]
        z_size = np.column_stack([length, width])
        # coarse dense gate: the hard radius widened by the largest possible truncation slack
        reach = p.gate_mm + 0.5 * max(float(z_size.max()), float(t_size.max()))
        du_all = z_u[None, :] - pos[:, 0][:, None]  # (T, M): along the belt is the selective axis
        rows, cols = np.nonzero(np.abs(du_all) < reach)
        d = np.column_stack([du_all[rows, cols], z_x[cols] - pos[rows, 1]])
        near = np.abs(d[:, 1]) < reach
        rows, cols, d = rows[near], cols[near], d[near]
        if rows.size == 0:
            e = np.zeros(0, np.int64)
            return e, e.copy(), np.zeros(0)
        size_t = t_size[rows]
        size_m = z_size[cols]
        ds = (s_mm - table.f[rows, S_REF])[:, None]
        half = cut_half_mm(size_m - size_t, size_t, ds, p)
        d_eff = np.maximum(np.abs(d) - half, 0.0)
        r0 = p.measurement_sigma_mm**2
        s_inn = var[rows] + r0
        d2_axes = cut_aware_distance2(d, half, s_inn, size_t)
        dir_m = cut_dir[cols]
        known = dir_m != 0
        if known.any():  # boxes at a view end: the cut side is known, the whole length change counts
            du_known = d[:, 0] - known_cut_shift(size_m[:, 0] - size_t[:, 0], dir_m)
            d_eff[:, 0] = np.where(known, np.abs(du_known), d_eff[:, 0])
            d2_axes[:, 0] = np.where(known, du_known * du_known / s_inn[:, 0], d2_axes[:, 0])
        d2 = d2_axes.sum(axis=1)
        ok = ((d_eff * d_eff).sum(axis=1) <= p.gate_mm**2) & (d2 <= p.gate_chi2)
        rows, cols = rows[ok], cols[ok]
        if rows.size == 0:
            e = np.zeros(0, np.int64)
            return e, e.copy(), np.zeros(0)
        s_inn = s_inn[ok]
        nll = d2[ok] + np.log(s_inn[:, 0] * s_inn[:, 1] / r0**2)
        log_ratio = np.log(size_m[ok] / size_t[ok])
        size_cost = np.minimum((log_ratio * log_ratio).sum(axis=1) / p.size_log_sigma**2, _SIZE_COST_CAP)
        votes = table.votes
        share = (votes[rows, class_ids[cols]] + _VOTE_PRIOR) / (votes[rows].sum(axis=1) + _VOTE_PRIOR * p.n_classes)
        cost = nll + size_cost - p.class_weight * np.log(share) + p.tentative_penalty * (1 - table.i[rows, CONFIRMED])
        return rows.astype(np.int64), cols.astype(np.int64), cost
