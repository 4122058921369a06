"""Columnar state of all live tracks (pure numpy).

All tracks live in one float matrix, one int matrix and one vote matrix
(rows oldest first), so every step of an update is a handful of vectorised
operations whatever the number of tracks: no loop over tracks. The filter
model itself is in ``motion.py``.
"""

from __future__ import annotations

from collections import deque
from itertools import compress
from typing import cast

import numpy as np
import numpy.typing as npt

from sorter.entities import Track
from sorter.track.export import build_tracks
from sorter.track.gate import PAIR_CUT, PAIR_D, PAIR_DSIZE, PAIR_HALF
from sorter.track.motion import PRED_P00, PRED_P01, PRED_P11, PRED_POS, known_cut_shift, predict_filters
from sorter.track.params import TrackerParams

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Float rows (one column per track), the two axes side by side so one operation serves both filters.
U, X = 0, 1  # position: belt-fixed along-belt, lateral
VU, VX = 2, 3  # residual velocity per mm of travel
PUU, PXX = 4, 5  # position variance
PUV, PXV = 6, 7  # position/velocity covariance
PVV, PVX = 8, 9  # velocity variance
LEN, WID = 10, 11  # extents along and across the belt
S_REF, SCORE_SUM = 12, 13  # odometer of the last detection; summed detection scores
S_RUN = 14  # odometer of the first detection of the current run (detections in consecutive frames)
N_FLOAT = 15
POS, VEL, P00, P01, P11, SIZE = (slice(k, k + 2) for k in (U, VU, PUU, PUV, PVV, LEN))
# int rows
ID, T_FIRST, T_LAST, HITS, CONFIRMED = 0, 1, 2, 3, 4
RUN = 5  # detections in the current run of consecutive frames
N_INT = 6

#: float rows exported to ``Track`` as they are
_EXPORTED = [U, X, LEN, WID, S_REF]


class TrackTable:
    """Storage of the live tracks: one column per track, oldest first.

    ``f`` is ``(N_FLOAT, T)`` and ``i`` is ``(N_INT, T)`` so that each
    quantity is a contiguous row (cheap to compute with and to write);
    ``votes`` is ``(T, n_classes)``. Columns are compacted on removal, so
    column ``k`` is always the ``k``-th oldest live track. The frozen
    :class:`Track` of each track is kept until the track changes: an
    unmatched track is not rebuilt.
    """

    def __init__(self, params: TrackerParams) -> None:
        self.params = params
        self.f = np.zeros((N_FLOAT, 0))
        self.i = np.zeros((N_INT, 0), np.int64)
        self.votes = np.zeros((0, params.n_classes))
        self._tracks: list[Track | None] = []  # the entity of each track, None until (re)built
        self._stale = np.zeros(0, np.bool_)  # tracks changed since their entity was built
        self.n_built = 0  # entities built by the last to_tracks call (work counter)

    def __len__(self) -> int:
        return int(self.f.shape[1])

    # ------------------------------------------------------------------ prediction
    def predict(self, s_mm: float) -> F64:
        """Every track's filters predicted to odometer ``s_mm``: ``(8, T)``, see ``motion.predict_filters``."""
        f = self.f
        return predict_filters(f[POS], f[VEL], f[P00], f[P01], f[P11], s_mm - f[S_REF], self.params)

    # ------------------------------------------------------------------ update
    def correct(
        self,
        rows: I64,
        pred: F64,
        pair: F64,
        s_mm: float,
        t_ns: int,
        t_prev_ns: int | None,
        scores: F64,
        class_ids: npt.NDArray[np.integer],
    ) -> None:
        """Fuse one measurement into each of the tracks ``rows`` (vectorised Kalman update).

        Args:
            rows: track columns, unique.
            pred: ``(8, K)`` their predictions to ``s_mm`` (``motion.predict_filters``).
            pair: ``(8, K)`` the pair table of each track with its measurement
                (``gate.PAIR_*``: innovation, extent change, cut shift, cut side).
            s_mm: odometer of the frame.
            t_ns: capture time of the frame.
            t_prev_ns: capture time of the previous frame: a track detected
                there continues its run of consecutive detections.
            scores: ``(K,)`` detection scores.
            class_ids: ``(K,)`` detected classes.

        A measured extent that differs from the track's by more than
        ``size_tolerance_mm`` means one of the two boxes was cut (image
        border, occlusion), which shifts its centre by half the cut towards
        its visible side. A shorter measurement is moved back by half the
        difference; a longer one means the *track* was built from cut views,
        so the track's centre is moved instead (an object entering the view
        grows frame by frame). Where the box reaches an end of the camera
        view (the pair's cut side, see ``motion.edge_cut_dir``) the cut side
        is known and the whole length difference is used; elsewhere the side
        is taken from the innovation's sign, changes within the tolerance are
        ignored, and a little variance is added for the risk of guessing wrong.

        A track is confirmed once it has ``min_hits`` detections, or a run of
        ``confirm_hits`` in consecutive frames spanning ``confirm_travel_mm``
        of belt travel.
        """
        if rows.size == 0:
            return
        p = self.params
        sub = self.f.take(rows, 1)
        tol = p.size_tolerance_mm
        pos, p00, p01, p11 = pred[PRED_POS], pred[PRED_P00], pred[PRED_P01], pred[PRED_P11]
        innov, d_size, half, cut_dir = pair[PAIR_D], pair[PAIR_DSIZE], pair[PAIR_HALF], pair[PAIR_CUT]
        grew = d_size > 0
        # move whichever centre came from the cut box by half the cut towards the other one,
        # never past it (a box grown on both sides moves nothing)
        shift = np.sign(innov) * np.minimum(half, np.abs(innov))
        risk = (half / 2.0) ** 2  # the cut side was guessed from the innovation's sign
        known = cut_dir != 0
        any_known = np.count_nonzero(known) > 0
        if any_known:
            shift[0] = np.where(known, known_cut_shift(d_size[0], cut_dir), shift[0])
            risk[0] = np.where(known, (tol / 4.0) ** 2, risk[0])
        risk_grew = risk * grew
        pos = pos + shift * grew
        p00 = p00 + risk_grew
        r = p.measurement_sigma_mm**2 + (risk - risk_grew)
        innov = innov - shift  # same residual whichever centre moved
        s_inn = p00 + r
        k0 = p00 / s_inn
        k1 = p01 / s_inn
        # a box cut at a view end says where the object is, but its centre moves with the
        # cut as the object enters or leaves: learning a residual velocity from it invents
        # a drift that is then extrapolated to the ejection line. Only full views teach it.
        if any_known:
            k1[0] *= ~known
        np.add(pos, k0 * innov, out=sub[POS])
        vel = sub[VEL]
        vel += k1 * innov
        np.minimum(np.maximum(vel, -p.max_residual_per_mm, out=vel), p.max_residual_per_mm, out=vel)
        one_minus_k0 = 1.0 - k0
        np.multiply(one_minus_k0, p00, out=sub[P00])
        np.multiply(one_minus_k0, p01, out=sub[P01])
        np.subtract(p11, k1 * p01, out=sub[P11])
        # extents: smooth within tolerance, jump up to a larger view (it is less cut), creep down slowly
        gain = np.where(np.abs(d_size) <= tol, 0.3, np.where(grew, 1.0, 0.1))
        # at a view end the box shows what is visible: follow it while the object enters, keep the full length as it leaves
        if any_known:
            gain[0] = np.where(known, grew[0], gain[0])
        gain *= d_size
        sub[SIZE] += gain
        sub[S_REF] = s_mm
        sub[SCORE_SUM] += scores
        si = self.i.take(rows, 1)
        run_on = si[T_LAST] == t_prev_ns  # detected in the previous frame too
        s_run = sub[S_RUN]
        s_run[~run_on] = s_mm
        run = si[RUN]
        run *= run_on
        run += 1
        hits = si[HITS]
        hits += 1
        si[T_LAST] = t_ns
        si[CONFIRMED] |= self._evidence(hits, run, s_mm - s_run)
        self.f[:, rows] = sub
        self.i[:, rows] = si
        votes = self.votes.reshape(-1)  # a view: rows are unique, so are the flat indices
        flat = rows * self.votes.shape[1] + class_ids
        votes[flat] = votes.take(flat) + scores
        self._stale[rows] = True

    def _evidence(self, hits: I64, run: I64, run_span_mm: F64) -> npt.NDArray[np.bool_]:
        """Where a track's detections confirm it.

        Args:
            hits: detections of each track.
            run: detections in each track's current run of consecutive frames.
            run_span_mm: belt travel from the run's first detection to its latest.
        """
        p = self.params
        ok: npt.NDArray[np.bool_] = hits >= p.min_hits
        if p.confirm_hits < p.min_hits:
            ok |= (run >= p.confirm_hits) & (run_span_mm >= p.confirm_travel_mm)
        return ok

    def append(
        self,
        ids: I64,
        s_mm: float,
        t_ns: int,
        z: F64,
        size: F64,
        scores: F64,
        class_ids: npt.NDArray[np.integer],
    ) -> None:
        """Start one new track per measurement (``z``: ``(2, n)`` centres ``(u_mm, x_mm)``; ``size``: extents)."""
        n = ids.size
        if n == 0:
            return
        p = self.params
        f = np.zeros((N_FLOAT, n))
        f[POS] = z
        f[P00] = p.measurement_sigma_mm**2
        f[P11] = p.initial_residual_sigma**2
        f[SIZE] = size
        f[S_REF] = s_mm
        f[S_RUN] = s_mm
        f[SCORE_SUM] = scores
        ii = np.empty((N_INT, n), np.int64)
        ii[ID] = ids
        ii[T_FIRST] = t_ns
        ii[T_LAST] = t_ns
        ii[HITS] = 1
        ii[RUN] = 1
        confirmed = self._evidence(ii[HITS], ii[RUN], np.zeros(n))
        if p.confirm_single_score is not None:
            confirmed |= scores >= p.confirm_single_score
        ii[CONFIRMED] = confirmed
        votes = np.zeros((n, p.n_classes))
        votes[np.arange(n), class_ids] = scores
        self.f = np.concatenate([self.f, f], axis=1)
        self.i = np.concatenate([self.i, ii], axis=1)
        self.votes = np.concatenate([self.votes, votes])
        self._tracks.extend([None] * n)
        self._stale = np.concatenate([self._stale, np.ones(n, np.bool_)])

    def remove(self, keep: npt.NDArray[np.bool_]) -> None:
        """Keep only the tracks where ``keep`` is true (order preserved)."""
        idx = keep.nonzero()[0]
        self.f = self.f.take(idx, 1)
        self.i = self.i.take(idx, 1)
        self.votes = self.votes.take(idx, 0)
        self._stale = self._stale.take(idx)
        self._tracks = list(compress(self._tracks, keep.tolist()))

    # ------------------------------------------------------------------ export
    def to_tracks(self, rows: I64 | None = None) -> list[Track]:
        """Frozen :class:`Track` entities for the tracks ``rows`` (all when ``None``), oldest first.

        ``class_confidence`` is the smoothed share of the score-weighted class
        votes held by the winning class, ``(votes[c] + prior) / (sum(votes) +
        n_classes * prior)`` with ``prior = params.class_prior_votes``: how sure
        the track is of its class, from how consistently the detector named it,
        not from the detector's absolute score level (which is an objectness
        as much as a class belief; confirmation judges existence).

        Entities of tracks unchanged since they were last built are reused.
        """
        stale = self._stale
        build = stale.nonzero()[0] if rows is None else rows.take(stale.take(rows).nonzero()[0])
        self.n_built = int(build.size)
        tracks = self._tracks
        if build.size:
            deque(map(tracks.__setitem__, build.tolist(), self._build(build)), maxlen=0)
            stale[build] = False
        # every wanted track has its entity now
        return cast("list[Track]", list(tracks) if rows is None else [tracks[r] for r in rows.tolist()])

    def _build(self, rows: I64) -> list[Track]:
        n = rows.size
        f = self.f.take(rows, 1)
        ii = self.i.take(rows, 1)
        votes = self.votes.take(rows, 0)
        cls = votes.argmax(axis=1)
        prior = self.params.class_prior_votes
        conf = (votes.max(axis=1) + prior) / (votes.sum(axis=1) + prior * votes.shape[1])
        # Report a residual velocity only when it is significant: a still object's
        # estimate is noise, and extrapolating noise over the metre to the ejection
        # line costs millimetres.
        vel = f[VEL]
        vel = np.where(np.abs(vel) > self.params.min_residual_per_mm, vel, 0.0)
        fl = f.take(_EXPORTED, 0).tolist()  # u, x, length, width, s_ref
        du, dx = vel.tolist()
        sigma_u, sigma_x = np.sqrt(f[P00]).tolist()
        ic = ii.tolist()
        columns = (
            ic[ID],
            cls.tolist(),
            conf.tolist(),
            map(tuple, votes.tolist()),
            fl[0],
            fl[1],
            du,
            dx,
            fl[2],
            fl[3],
            sigma_u,
            sigma_x,
            fl[4],
            ic[T_FIRST],
            ic[T_LAST],
            ic[HITS],
            map(bool, ic[CONFIRMED]),
        )
        return build_tracks(n, columns)
