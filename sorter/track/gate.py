"""Gating of (track, measurement) pairs and their association costs (pure numpy).

The gate is both a hard radius (``gate_mm``) and ``gate_chi2`` on the
normalised distance, after the size slack of a possibly cut box (see
``motion.cut_half_mm``). It is evaluated on every pair at once: a dense
``(tracks x measurements)`` pre-gate on the widest possible reach, then the
exact gate on the few pairs left.

Only pairs whose track or measurement has another candidate need a cost (an
unambiguous pair is matched whatever its cost), so :func:`pair_costs` is
called for those alone. Cost of pairing track ``t`` with measurement ``m``:

* negative log-likelihood of the position: ``log(S_u S_x / sigma^4)`` plus the
  normalised squared distance where ``S`` is the predicted track variance
  plus the measurement variance (the log term makes a vague young track pay
  for its wide prediction);
* a size term: squared log ratios of length and width over ``size_log_sigma``;
* a class term: ``-class_weight * log`` of the track's smoothed vote share for
  the measured class;
* ``tentative_penalty`` for unconfirmed tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sorter.track.motion import (
    PRED_DS,
    PRED_P00,
    PRED_POS,
    PRED_SIZE,
    cut_aware_distance2,
    cut_half_mm,
    known_cut_shift,
    leaving_lateral_slack_mm,
)
from sorter.track.params import TrackerParams

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# rows of the measurement table (one column per measurement), aligned with motion.PRED_POS and PRED_SIZE
MEAS_Z = slice(0, 2)  # belt-fixed centre (u_mm, x_mm)
MEAS_SIZE = slice(2, 4)  # extents (length, width)
MEAS_CUT = 4  # known cut side of the box (see motion.edge_cut_dir)
N_MEAS = 5

# rows of the pair table: what association found out about each pair, reused by the filter update
PAIR_D = slice(0, 2)  # innovation: measured minus predicted centre (along, across)
PAIR_DSIZE = slice(2, 4)  # measured minus tracked extent (length, width)
PAIR_HALF = slice(4, 6)  # centre shift a cut of that size explains
PAIR_CUT = 6  # known cut side of the measured box (see motion.edge_cut_dir)
PAIR_D2 = 7  # normalised squared distance, cut-aware
N_PAIR = 8

VOTE_PRIOR = 0.5  # pseudo-votes per class when scoring class agreement
REACH_MARGIN_MM = 1.0  # the coarse gate's margin over the exact one, for rounding
SIZE_COST_CAP = 25.0  # bounded so one odd box cannot dominate the whole assignment


@dataclass(frozen=True, slots=True)
class Pairs:
    """Gated pairs: track ``rows[k]`` with measurement ``cols[k]``; ``table[:, k]`` holds their ``PAIR_*`` facts."""

    rows: I64
    cols: I64
    table: F64

    @property
    def size(self) -> int:
        return int(self.rows.size)


def no_pairs() -> Pairs:
    e = np.zeros(0, np.int64)
    return Pairs(e, e.copy(), np.zeros((N_PAIR, 0)))


def gate_pairs(pred: F64, meas: F64, params: TrackerParams) -> Pairs:
    """Every (track, measurement) pair inside the gate.

    Quantities of the two axes are ``(2, n)`` arrays, row 0 along the belt and
    row 1 across it, so each step serves both axes at once.

    Args:
        pred: ``(N_PRED, T)`` tracks predicted to the frame (``motion.predict_filters``).
        meas: ``(N_MEAS, M)`` the measurements (``MEAS_*`` rows).
        params: gate settings.
    """
    p = params
    pos = pred[PRED_POS]
    # Coarse dense gate, per axis: the hard radius widened by the largest truncation slack any pair can have, half the
    # largest change of extent (no pair's extents differ by more than the spread of all extents). The exact gate
    # below passes no pair beyond it (|innovation| - slack <= gate_mm), so only the work changes, never the pairs.
    sizes = np.concatenate((meas[MEAS_SIZE], pred[PRED_SIZE]), 1)
    spread = np.maximum.reduce(sizes, 1) - np.minimum.reduce(sizes, 1)
    reach_u, reach_x = (0.5 * spread + (p.gate_mm + REACH_MARGIN_MM)).tolist()
    dist = np.subtract(meas[MEAS_Z, :, None], pos[:, None, :])  # (2, M, T): the long axis innermost
    np.abs(dist, out=dist)
    near = dist[0] <= reach_u
    near &= dist[1] <= reach_x
    # flat indices, then (measurement, track): the same pairs in the same order as the 2-D nonzero, at a fraction of its cost
    cols, rows = divmod(near.ravel().nonzero()[0], pos.shape[1])
    if rows.size == 0:
        return no_pairs()
    tp = pred[: PRED_DS + 1].take(rows, 1)  # the rows the gate reads: position, extent, variance, travel
    mp = meas.take(cols, 1)
    table = np.empty((N_PAIR, rows.size))
    np.subtract(mp[0:4], tp[0:4], out=table[0:4])  # innovation and extent change in one call
    a = np.abs(table[0:4])
    d, d_size, ad = table[PAIR_D], table[PAIR_DSIZE], a[0:2]
    size_t = tp[PRED_SIZE]
    half = cut_half_mm(d_size, a[2:4], size_t, tp[PRED_DS], p, out=table[PAIR_HALF])
    excess = ad - half
    d_eff = np.maximum(excess, 0.0)
    s_inn = tp[PRED_P00] + p.measurement_sigma_mm**2
    d2_axes = cut_aware_distance2(d, excess, half, s_inn, size_t)
    dir_m = table[PAIR_CUT]
    dir_m[:] = mp[MEAS_CUT]
    known = dir_m != 0
    if np.count_nonzero(known):  # boxes at a view end: the cut side is known, the whole length change counts
        du_known = d[0] - known_cut_shift(d_size[0], dir_m)
        np.copyto(d_eff[0], np.abs(du_known), where=known)
        np.copyto(d2_axes[0], du_known * du_known / s_inn[0], where=known)
        # across the belt a box leaving the view shows the part still in view, to one side for an askew
        # object: the normalised distance allows for that (the hard radius stays as it is)
        leaving = dir_m < 0
        dx_out = np.maximum(ad[1] - leaving_lateral_slack_mm(d_size[0], size_t[0], size_t[1]), 0.0)
        np.copyto(d2_axes[1], np.minimum(d2_axes[1], dx_out * dx_out / s_inn[1]), where=leaving)
    d2 = np.add(d2_axes[0], d2_axes[1], out=table[PAIR_D2])
    d_eff *= d_eff
    ok = np.add(d_eff[0], d_eff[1], out=d_eff[0]) <= p.gate_mm**2
    ok &= d2 <= p.gate_chi2
    if np.count_nonzero(ok) == ok.size:
        return Pairs(rows, cols, table)
    keep = ok.nonzero()[0]
    return Pairs(rows.take(keep), cols.take(keep), table.take(keep, 1))


def pair_costs(
    idx: I64,
    pairs: Pairs,
    pred: F64,
    votes: F64,
    confirmed: I64,
    meas: F64,
    class_ids: npt.NDArray[np.integer],
    params: TrackerParams,
) -> F64:
    """Association cost of the pairs ``idx`` (see the module docstring).

    Args:
        idx: indices into ``pairs``.
        pairs: the gated pairs.
        pred: ``(N_PRED, T)`` predicted tracks.
        votes: ``(T, n_classes)`` accumulated class votes.
        confirmed: ``(T,)`` 1 for confirmed tracks.
        meas: ``(N_MEAS, M)`` the measurements.
        class_ids: ``(M,)`` measured classes.
        params: cost weights.
    """
    p = params
    rows = pairs.rows.take(idx)
    cols = pairs.cols.take(idx)
    tp = pred[: PRED_DS + 1].take(rows, 1)
    r0 = p.measurement_sigma_mm**2
    s_inn = tp[PRED_P00] + r0
    nll = pairs.table[PAIR_D2].take(idx) + np.log(s_inn[0] * s_inn[1] / r0**2)
    log_ratio = np.log(meas[MEAS_SIZE].take(cols, 1) / tp[PRED_SIZE])
    log_ratio *= log_ratio
    size_cost = np.minimum((log_ratio[0] + log_ratio[1]) / p.size_log_sigma**2, SIZE_COST_CAP)
    v = votes.take(rows, 0)
    measured = v.reshape(-1).take(np.arange(0, v.size, v.shape[1]) + class_ids.take(cols))  # votes for the measured class
    share = (measured + VOTE_PRIOR) / (np.add.reduce(v, 1) + VOTE_PRIOR * p.n_classes)
    cost: F64 = nll + size_cost - p.class_weight * np.log(share) + p.tentative_penalty * (1 - confirmed.take(rows))
    return cost
