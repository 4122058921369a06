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

from sorter.track.motion import PRED_P00, PRED_POS, cut_aware_distance2, cut_half_mm, known_cut_shift
from sorter.track.params import TrackerParams

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# rows of the pair table: what association found out about each pair, reused by the filter update
PAIR_D = slice(0, 2)  # innovation: measured minus predicted centre (along, across)
PAIR_DSIZE = slice(2, 4)  # measured minus tracked extent (length, width)
PAIR_HALF = slice(4, 6)  # centre shift a cut of that size explains
PAIR_CUT = 6  # known cut side of the measured box (see motion.edge_cut_dir)
PAIR_D2 = 7  # normalised squared distance, cut-aware
N_PAIR = 8

_VOTE_PRIOR = 0.5  # pseudo-votes per class when scoring class agreement
_SIZE_COST_CAP = 25.0  # bounded so one odd box cannot dominate the whole assignment


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


def gate_pairs(
    s_mm: float,
    pred: F64,
    t_size: F64,
    t_s_ref: F64,
    z: F64,
    z_size: F64,
    cut_dir: F64,
    params: TrackerParams,
) -> Pairs:
    """Every (track, measurement) pair inside the gate.

    Quantities of the two axes are ``(2, n)`` arrays, row 0 along the belt and
    row 1 across it, so each step serves both axes at once.

    Args:
        s_mm: odometer of the frame.
        pred: ``(8, T)`` tracks predicted to ``s_mm`` (``motion.predict_filters``).
        t_size: ``(2, T)`` tracked extents (length, width).
        t_s_ref: ``(T,)`` odometer of each track's last detection.
        z: ``(2, M)`` measured belt-fixed centres ``(u_mm, x_mm)``.
        z_size: ``(2, M)`` measured extents.
        cut_dir: ``(M,)`` known cut side of each box.
        params: gate settings.
    """
    p = params
    pos = pred[PRED_POS]
    # coarse dense gate: the hard radius widened by the largest possible truncation slack
    reach = p.gate_mm + 0.5 * max(float(z_size.max()), float(t_size.max()))
    near = np.abs(z[0][:, None] - pos[0]) < reach  # (M, T): the long axis innermost
    near &= np.abs(z[1][:, None] - pos[1]) < reach
    cols, rows = near.nonzero()
    if rows.size == 0:
        return no_pairs()
    table = np.empty((N_PAIR, rows.size))
    np.subtract(z.take(cols, 1), pos.take(rows, 1), out=table[PAIR_D])
    size_t = t_size.take(rows, 1)
    np.subtract(z_size.take(cols, 1), size_t, out=table[PAIR_DSIZE])
    a = np.abs(table[0:4])  # |d| and |d_size| in one call
    d, d_size, ad = table[PAIR_D], table[PAIR_DSIZE], a[0:2]
    half = cut_half_mm(d_size, a[2:4], size_t, s_mm - t_s_ref.take(rows), p, out=table[PAIR_HALF])
    excess = ad - half
    d_eff = np.maximum(excess, 0.0)
    s_inn = pred[PRED_P00].take(rows, 1) + p.measurement_sigma_mm**2
    d2_axes = cut_aware_distance2(d, excess, half, s_inn, size_t)
    dir_m = cut_dir.take(cols, out=table[PAIR_CUT])
    known = dir_m != 0
    if np.count_nonzero(known):  # boxes at a view end: the cut side is known, the whole length change counts
        du_known = d[0] - known_cut_shift(d_size[0], dir_m)
        d_eff[0] = np.where(known, np.abs(du_known), d_eff[0])
        d2_axes[0] = np.where(known, du_known * du_known / s_inn[0], d2_axes[0])
    d2 = np.add(d2_axes[0], d2_axes[1], out=table[PAIR_D2])
    d_eff *= d_eff
    ok = (d_eff[0] + d_eff[1] <= p.gate_mm**2) & (d2 <= p.gate_chi2)
    if np.count_nonzero(ok) == rows.size:
        return Pairs(rows, cols, table)
    keep = ok.nonzero()[0]
    return Pairs(rows.take(keep), cols.take(keep), table.take(keep, 1))


def pair_costs(
    idx: I64,
    pairs: Pairs,
    pred: F64,
    t_size: F64,
    votes: F64,
    confirmed: I64,
    z_size: F64,
    class_ids: npt.NDArray[np.integer],
    params: TrackerParams,
) -> F64:
    """Association cost of the pairs ``idx`` (see the module docstring).

    Args:
        idx: indices into ``pairs``.
        pairs: the gated pairs.
        pred: ``(8, T)`` predicted tracks.
        t_size: ``(2, T)`` tracked extents.
        votes: ``(T, n_classes)`` accumulated class votes.
        confirmed: ``(T,)`` 1 for confirmed tracks.
        z_size: ``(2, M)`` measured extents.
        class_ids: ``(M,)`` measured classes.
        params: cost weights.
    """
    p = params
    rows = pairs.rows.take(idx)
    cols = pairs.cols.take(idx)
    r0 = p.measurement_sigma_mm**2
    s_inn = pred[PRED_P00].take(rows, 1) + r0
    nll = pairs.table[PAIR_D2].take(idx) + np.log(s_inn[0] * s_inn[1] / r0**2)
    log_ratio = np.log(z_size.take(cols, 1) / t_size.take(rows, 1))
    log_ratio *= log_ratio
    size_cost = np.minimum((log_ratio[0] + log_ratio[1]) / p.size_log_sigma**2, _SIZE_COST_CAP)
    v = votes.take(rows, 0)
    share = (v[np.arange(rows.size), class_ids.take(cols)] + _VOTE_PRIOR) / (v.sum(axis=1) + _VOTE_PRIOR * p.n_classes)
    cost: F64 = nll + size_cost - p.class_weight * np.log(share) + p.tentative_penalty * (1 - confirmed.take(rows))
    return cost
