"""Columnar state of all live tracks (pure numpy).

All tracks live in one float matrix, one int matrix and one vote matrix
(columns oldest first, in buffers with spare room at the end), so every step
of an update is a handful of vectorised operations whatever the number of
tracks: no loop over tracks. The filter model itself is in ``motion.py``.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import numpy.typing as npt

from sorter.entities import TrackColumns
from sorter.track.gate import PAIR_CUT, PAIR_D, PAIR_DSIZE, PAIR_HALF
from sorter.track.motion import (
    N_PRED,
    PRED_DS,
    PRED_P00,
    PRED_P01,
    PRED_P11,
    PRED_POS,
    PRED_SIZE,
    known_cut_shift,
    predict_filters,
)
from sorter.track.params import TrackerParams

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Float rows (one column per track), the two axes side by side so one operation serves both filters;
# ordered so that a new track's rows are a few contiguous blocks.
U, X = 0, 1  # position: belt-fixed along-belt, lateral
LEN, WID = 2, 3  # extents along and across the belt
PUU, PXX = 4, 5  # position variance
S_REF, S_RUN = 6, 7  # odometer of the last detection; of the first detection of the current run (consecutive frames)
SCORE_SUM = 8  # summed detection scores
VU, VX = 9, 10  # residual velocity per mm of travel
PUV, PXV = 11, 12  # position/velocity covariance
PVV, PVX = 13, 14  # velocity variance
N_FLOAT = 15
POS, SIZE, P00, VEL, P01, P11 = (slice(k, k + 2) for k in (U, LEN, PUU, VU, PUV, PVV))
# int rows
ID, T_FIRST, T_LAST, HITS, RUN, CONFIRMED = range(6)  # RUN: detections in the current run of consecutive frames
SEEN_FULL = 6  # 1 once a box not cut at a view end was fused (the lateral filter starts from the first such box)
N_INT = 7

#: rows exported to ``TrackColumns``, in its field order: a row to write the confidence in, u, x, du, dx, length,
#: width, two variances (turned into sigmas), odometer; id, a row for the class, first and last time, hits, confirmed
_EXPORTED = np.array([SCORE_SUM, U, X, VU, VX, LEN, WID, PUU, PXX, S_REF])
_EXPORTED_INT = np.array([ID, ID, T_FIRST, T_LAST, HITS, CONFIRMED])
_MIN_CAPACITY = 64
_SPARE = 32  # room for new tracks left by a removal


_SPARE_IDX = np.zeros(_SPARE, np.int64)


class TrackTable:
    """Storage of the live tracks: one column per track, oldest first.

    ``f`` is ``(N_FLOAT, T)`` and ``i`` is ``(N_INT, T)`` so that each
    quantity is a contiguous row (cheap to compute with and to write);
    ``votes`` is ``(T, n_classes)``. They are views of buffers with room for
    more tracks, so starting a track writes into the buffers instead of
    reallocating them. Columns are compacted on removal, so column ``k`` is
    always the ``k``-th oldest live track. :meth:`columns` copies them out
    for consumers.
    """

    def __init__(self, params: TrackerParams, kernels: ModuleType | None = None) -> None:
        """``kernels``: the compiled kernels module (``compiled.py``) for retirement, new tracks and the export,
        or ``None`` for numpy (same results, bit for bit)."""
        self.params = params
        self._kernels = kernels
        self._n = 0
        self._f = np.zeros((N_FLOAT, _MIN_CAPACITY))
        self._i = np.zeros((N_INT, _MIN_CAPACITY), np.int64)
        self._votes = np.zeros((_MIN_CAPACITY, params.n_classes))
        # what the evidence of one detection (a run of 1 over 0 mm) says: see _evidence
        p = params
        run_of_one = p.confirm_hits < p.min_hits and p.confirm_hits <= 1 and p.confirm_travel_mm <= 0.0
        self._confirm_first = p.min_hits <= 1 or run_of_one

    @property
    def confirm_first(self) -> bool:
        """Whether one detection confirms a new track (whatever its score)."""
        return self._confirm_first

    def reserve(self, n: int) -> None:
        """Make room for ``n`` tracks in the buffers (for the compiled kernels, which write into them)."""
        if n > self._f.shape[1]:
            self._grow(n)

    def extend(self, k: int) -> None:
        """Count ``k`` more live tracks, written into the buffers after the last one by a compiled kernel."""
        self._n += k

    def __len__(self) -> int:
        return self._n

    @property
    def f(self) -> F64:
        return self._f[:, : self._n]

    @property
    def i(self) -> I64:
        return self._i[:, : self._n]

    @property
    def votes(self) -> F64:
        return self._votes[: self._n]

    @property
    def buf_f(self) -> F64:
        """The float buffer itself (live tracks in its first ``len(self)`` columns), for the compiled kernels."""
        return self._f

    @property
    def buf_i(self) -> I64:
        """The int buffer itself, for the compiled kernels."""
        return self._i

    @property
    def buf_votes(self) -> F64:
        """The vote buffer itself, for the compiled kernels."""
        return self._votes

    # ------------------------------------------------------------------ prediction
    def predict(self, s_mm: float) -> F64:
        """Every track predicted to odometer ``s_mm``: ``(N_PRED, T)``, see ``motion.predict_filters``."""
        f = self.f
        out = np.empty((N_PRED, self._n))
        np.subtract(s_mm, f[S_REF], out=out[PRED_DS])
        out[PRED_SIZE] = f[SIZE]
        return predict_filters(f[POS], f[VEL], f[P00], f[P01], f[P11], out, self.params)

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
            pred: ``(N_PRED, K)`` their predictions to ``s_mm`` (``motion.predict_filters``).
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
        Boxes at a view end teach no residual velocity on either axis, and one
        at the downstream end leaves the lateral centre as the full views put it
        (the visible part of an object lying askew lies to one side).

        A track is confirmed once it has ``min_hits`` detections, or a run of
        ``confirm_hits`` in consecutive frames spanning ``confirm_travel_mm``
        of belt travel.
        """
        if rows.size == 0:
            return
        p = self.params
        sub = self._f.take(rows, 1)  # the buffers themselves: rows are live columns
        tol = p.size_tolerance_mm
        pos, p00, p01, p11 = pred[PRED_POS], pred[PRED_P00], pred[PRED_P01], pred[PRED_P11]
        innov, d_size, half, cut_dir = pair[PAIR_D], pair[PAIR_DSIZE], pair[PAIR_HALF], pair[PAIR_CUT]
        x_meas = pos[1] + innov[1]  # the measured lateral centre
        grew = d_size > 0
        # move whichever centre came from the cut box by half the cut towards the other one,
        # never past it (a box grown on both sides moves nothing)
        shift = np.copysign(np.minimum(half, np.abs(innov)), innov)
        risk = (half / 2.0) ** 2  # the cut side was guessed from the innovation's sign
        known = cut_dir != 0
        any_known = np.count_nonzero(known) > 0
        if any_known:
            np.copyto(shift[0], known_cut_shift(d_size[0], cut_dir), where=known)
            np.copyto(risk[0], (tol / 4.0) ** 2, where=known)
            # across the belt a box cut at the downstream end shows the part still in view: for an object
            # lying askew its lateral centre is not the object's, which the track knows from full views
            # already, so it does not move the lateral centre (an entering object has no better view yet)
            leaving = cut_dir < 0
            np.copyto(shift[1], 0.0, where=leaving)
            np.copyto(risk[1], 0.0, where=leaving)
        risk_grew = risk * grew
        pos = pos + shift * grew
        p00 = p00 + risk_grew
        r = p.measurement_sigma_mm**2 + (risk - risk_grew)
        innov = innov - shift  # same residual whichever centre moved
        s_inn = p00 + r
        k0 = p00 / s_inn
        k1 = p01 / s_inn
        # a box cut at a view end says where the object is along the belt, but its centre moves
        # with the cut as the object enters or leaves: learning a residual velocity from it invents
        # a drift that is then extrapolated to the ejection line or pick window. Only full views
        # teach it, along the belt and across it (the visible part's lateral centre moves with the cut
        # too); a leaving box does not move the lateral centre either (see above).
        if any_known:
            np.copyto(k1, 0.0, where=known)
            np.copyto(k0[1], 0.0, where=leaving)
        np.add(pos, k0 * innov, out=sub[POS])
        vel = sub[VEL]
        vel += k1 * innov
        np.minimum(np.maximum(vel, -p.max_residual_per_mm, out=vel), p.max_residual_per_mm, out=vel)
        one_minus_k0 = 1.0 - k0
        np.multiply(one_minus_k0, p00, out=sub[P00])
        np.multiply(one_minus_k0, p01, out=sub[P01])
        np.subtract(p11, k1 * p01, out=sub[P11])
        si = self._i.take(rows, 1)
        # a track started from boxes cut at a view end (an object entering) has the lateral centre of the
        # part then visible: its first full view restarts the lateral filter there, rather than
        # correcting it slowly and reading the correction as a lateral drift
        full = cut_dir == 0
        first_full = full & (si[SEEN_FULL] == 0)
        if np.count_nonzero(first_full):
            np.copyto(sub[X], x_meas, where=first_full)
            np.copyto(sub[PXX], p.measurement_sigma_mm**2, where=first_full)
            np.copyto(sub[VX], 0.0, where=first_full)
            np.copyto(sub[PXV], 0.0, where=first_full)
            np.copyto(sub[PVX], p.initial_residual_sigma**2, where=first_full)
        si[SEEN_FULL] |= full
        # extents: smooth within tolerance, jump up to a larger view (it is less cut), creep down slowly
        gain = np.where(grew, 1.0, 0.1)
        np.copyto(gain, 0.3, where=np.abs(d_size) <= tol)
        # at a view end the box shows what is visible: follow it while the object enters, keep the full length as it leaves
        if any_known:
            np.copyto(gain[0], grew[0], where=known)
        gain *= d_size
        sub[SIZE] += gain
        sub[S_REF] = s_mm
        sub[SCORE_SUM] += scores
        run_on = si[T_LAST] == t_prev_ns  # detected in the previous frame too
        s_run = sub[S_RUN]
        np.copyto(s_run, s_mm, where=~run_on)
        run, hits = si[RUN], si[HITS]
        run *= run_on
        si[HITS : RUN + 1] += 1
        si[T_LAST] = t_ns
        evidence = self._evidence(hits, run, s_mm - s_run)
        if p.confirm_needs_full_view:
            evidence &= si[SEEN_FULL] != 0
        si[CONFIRMED] |= evidence
        votes_per_track = self._votes.shape[1]
        self._f[:, rows] = sub
        self._i[:, rows] = si
        votes = self._votes.reshape(-1)  # a view: rows are unique, so are the flat indices
        flat = rows * votes_per_track + class_ids
        votes[flat] = votes.take(flat) + scores

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
        full_view: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        """Start one new track per measurement (``z``: ``(2, n)`` centres ``(u_mm, x_mm)``; ``size``: extents).

        ``full_view``: which boxes are not cut at a view end (all when ``None``); a track started from a
        cut box restarts its lateral filter at its first full view (see :meth:`correct`).
        """
        k = ids.size
        if k == 0:
            return
        p = self.params
        n0 = self._n
        n1 = n0 + k
        if n1 > self._f.shape[1]:
            self._grow(n1)
        f = self._f[:, n0:n1]
        f[POS] = z
        f[SIZE] = size
        f[P00] = p.measurement_sigma_mm**2
        f[S_REF : S_RUN + 1] = s_mm
        f[SCORE_SUM] = scores
        f[VU : PXV + 1] = 0.0  # velocity and covariance
        f[P11] = p.initial_residual_sigma**2
        ii = self._i[:, n0:n1]
        ii[ID] = ids
        ii[T_FIRST : T_LAST + 1] = t_ns
        ii[HITS : RUN + 1] = 1
        ii[SEEN_FULL] = 1 if full_view is None else full_view
        if p.confirm_single_score is not None:
            np.greater_equal(scores, p.confirm_single_score, out=ii[CONFIRMED], casting="unsafe")
            if self._confirm_first:
                ii[CONFIRMED] = 1
        else:
            ii[CONFIRMED] = self._confirm_first
        if p.confirm_needs_full_view:
            ii[CONFIRMED] &= ii[SEEN_FULL]
        votes = self._votes[n0:n1]
        votes.fill(0.0)
        votes[np.arange(k), class_ids] = scores
        self._n = n1

    def _grow(self, n: int) -> None:
        cap = max(2 * self._f.shape[1], n)
        for name in ("_f", "_i"):
            old = getattr(self, name)
            new = np.zeros((old.shape[0], cap), old.dtype)
            new[:, : self._n] = old[:, : self._n]
            setattr(self, name, new)
        votes = np.zeros((cap, self._votes.shape[1]))
        votes[: self._n] = self._votes[: self._n]
        self._votes = votes

    def retire_compiled(self, s_mm: float, t_min_ns: int, t_prev_ns: int | None, max_travel_mm: F64) -> I64:
        """Remove the aged tracks in place with the compiled kernel (``BeltTracker._retire``'s rule).

        Returns:
            the removed tracks' columns, as they were before the removal.
        """
        assert self._kernels is not None
        has_prev = t_prev_ns is not None
        aged, self._n = self._kernels.retire(
            self._f, self._i, self._votes, self._n, s_mm, t_min_ns, has_prev, t_prev_ns if has_prev else 0, max_travel_mm
        )
        out: I64 = aged
        return out

    def remove(self, keep: npt.NDArray[np.bool_]) -> None:
        """Keep only the tracks where ``keep`` is true (order preserved)."""
        idx = keep.nonzero()[0]
        n = idx.size
        # one gather per buffer into new buffers with spare room (the spare columns copy track 0: overwritten when used)
        idx = np.concatenate((idx, _SPARE_IDX))
        self._f = self._f.take(idx, 1)
        self._i = self._i.take(idx, 1)
        self._votes = self._votes.take(idx, 0)
        self._n = n

    # ------------------------------------------------------------------ export
    def columns(self) -> TrackColumns:
        """Read-only copies of every live track, as consumers see them.

        ``class_confidence`` is the smoothed share of the score-weighted class
        votes held by the winning class, ``(votes[c] + prior) / (sum(votes) +
        n_classes * prior)`` with ``prior = params.class_prior_votes``: how sure
        the track is of its class, from how consistently the detector named it,
        not from the detector's absolute score level (which is an objectness
        as much as a class belief; confirmation judges existence).
        """
        prior = self.params.class_prior_votes
        if self._kernels is not None:
            n_classes = self._votes.shape[1]
            vote_sums = np.add.reduce(self.votes, 1)  # numpy's sums, as below
            fl, ii, votes = self._kernels.columns(
                self._f, self._i, self._votes, self._n, vote_sums, prior, prior * n_classes, self.params.min_residual_per_mm
            )
        else:
            fl, ii, votes = self.f.take(_EXPORTED, 0), self.i.take(_EXPORTED_INT, 0), self.votes.copy()
            n, n_classes = votes.shape
            class_id = np.argmax(votes, 1, out=ii[1])
            top = votes.reshape(-1).take(np.arange(0, n * n_classes, n_classes) + class_id)  # each row's maximum
            np.divide(top + prior, np.add.reduce(votes, 1) + prior * n_classes, out=fl[0])
            # Report a residual velocity only when it is significant: a still object's
            # estimate is noise, and extrapolating noise over the metre to the ejection
            # line costs millimetres.
            vel = fl[3:5]
            vel[np.abs(vel) <= self.params.min_residual_per_mm] = 0.0
            np.sqrt(fl[7:9], out=fl[7:9])
        confirmed = ii[5] != 0
        for a in (fl, ii, votes, confirmed):
            a.flags.writeable = False
        conf, u, x, du, dx, length, width, sigma_u, sigma_x, s_ref = fl
        track_id, class_id, t_first, t_last, hits, _ = ii
        return TrackColumns(
            track_id, class_id, conf, votes, u, x, du, dx, length, width, sigma_u, sigma_x, s_ref, t_first, t_last, hits,
            confirmed,
        )  # fmt: skip
