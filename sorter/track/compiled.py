"""Compiled kernels of one tracker update (numba): prediction with gating, and the filter update.

They do, pair by pair and track by track, exactly the arithmetic of the numpy
functions they replace (``motion.predict_filters``, ``gate.gate_pairs``,
``state.TrackTable.correct``): the same IEEE operations in the same order, so
every float they produce is bit for bit the numpy one, and every sorting
figure stays as it was. Two rules keep it so:

* no fused multiply-add and no reassociation (numba's default, no
  ``fastmath``): ``a * b + c`` rounds twice, as numpy does;
* no transcendental functions: numpy may compute ``pow`` and ``log`` with its
  own vectorised code (SVML on AVX-512 machines), whose last bit can differ
  from the C library's. The one power the update needs (``|ds|**3``) is
  computed by numpy and passed in; the association cost (``gate.pair_costs``,
  with its logarithms, for ambiguous pairs only) stays in numpy.

``tests/unit/track/test_tracker_compiled.py`` runs both implementations side
by side on dense, noisy scenes and compares every output bit for bit.

Importing this module imports numba; the kernels compile on first use and
are cached on disk next to the module (when it is writable), so later
processes load them in a fraction of a second. :func:`sorter.track.tracker.load_kernels`
imports it lazily and falls back to numpy where numba is missing.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# the float parameters, in the order of the array built by ``kernel_params``
K_Q = 0  # residual_process_sigma**2 / residual_change_travel_mm
K_SIGMA_R = 1  # residual_process_sigma
K_R0 = 2  # measurement_sigma_mm**2
K_GATE2 = 3  # gate_mm**2
K_REACH = 4  # gate_mm + the coarse gate's margin
K_CHI2 = 5  # gate_chi2
K_TOL = 6  # size_tolerance_mm
K_MAX_CUT = 7  # max_cut_fraction
K_SYM = 8  # motion.SYMMETRIC_SIZE_NOISE
K_RISK_KNOWN = 9  # (size_tolerance_mm / 4)**2
K_MAX_RES = 10  # max_residual_per_mm
K_INIT_RES2 = 11  # initial_residual_sigma**2
K_MIN_HITS = 12
K_CONFIRM_HITS = 13
K_CONFIRM_TRAVEL = 14  # confirm_travel_mm
K_NEEDS_FULL = 15  # 1.0 when confirm_needs_full_view
K_SIZE_LOG_SIGMA2 = 16  # size_log_sigma**2
K_CLASS_WEIGHT = 17
K_TENTATIVE_PENALTY = 18
K_VOTE_PRIOR = 19  # gate.VOTE_PRIOR
K_VOTE_PRIOR_ALL = 20  # gate.VOTE_PRIOR * n_classes
K_SIZE_COST_CAP = 21  # gate.SIZE_COST_CAP
K_SINGLE_SCORE = 22  # confirm_single_score, NaN for None
K_CONFIRM_FIRST = 23  # 1.0 when one detection confirms a track (TrackTable._confirm_first)
N_K = 24

# rows of the track table (state.py), the predicted table (motion.py) and the pair table (gate.py), repeated here
# so that the kernels compile against constants; tests/unit/track/test_tracker_compiled.py checks they agree
_U, _LEN, _PUU, _S_REF, _S_RUN, _SCORE_SUM, _VU, _PUV, _PVV = 0, 2, 4, 6, 7, 8, 9, 11, 13
_ID, _T_FIRST, _T_LAST, _HITS, _RUN, _CONFIRMED, _SEEN_FULL = 0, 1, 2, 3, 4, 5, 6
_P_POS, _P_SIZE, _P_P00, _P_DS, _P_P01, _P_P11 = 0, 2, 4, 6, 7, 9
_N_PAIR = 8

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


@_inline
def _max(a: float, b: float) -> float:  # pragma: no cover - compiled
    """``numpy.maximum`` of two floats: the first when equal, NaN when either is."""
    return a if (a >= b or a != a) else b


@_inline
def _min(a: float, b: float) -> float:  # pragma: no cover - compiled
    """``numpy.minimum`` of two floats: the first when equal, NaN when either is."""
    return a if (a <= b or a != a) else b


@_jit
def predict_gate(
    f: F64, n: int, ads3: F64, meas: F64, n_meas: int, k: F64, pred: F64
) -> tuple[I64, I64, F64]:  # pragma: no cover - compiled
    """Predict the ``n`` tracks of ``f`` and gate them against the measurements.

    Args:
        f: the track table's float buffer (state.py rows, ``n`` live columns).
        n: live tracks.
        ads3: ``(n,)`` ``abs(ds)**3`` as numpy computes it.
        meas: ``(N_MEAS, n_meas)`` the measurements (gate.py ``MEAS_*`` rows).
        n_meas: measurements.
        k: parameters (``K_*``).
        pred: ``(N_PRED, n)`` whose ``PRED_DS`` row holds each track's travel;
            the prediction is written to the other rows.

    Returns:
        ``(rows, cols, table)``: the gated pairs as ``gate.Pairs`` holds them.
    """
    q = k[K_Q]
    sigma_r = k[K_SIGMA_R]
    for t in range(n):
        ds = pred[_P_DS, t]
        ads = abs(ds)
        a3 = ads3[t]
        for ax in range(2):
            p01 = f[_PUV + ax, t]
            p11 = f[_PVV + ax, t]
            pred[_P_POS + ax, t] = f[_U + ax, t] + f[_VU + ax, t] * ds
            pred[_P_SIZE + ax, t] = f[_LEN + ax, t]
            v = f[_PUU + ax, t] + 2.0 * ds * p01
            v = v + ds * ds * p11
            v = v + q * a3 / 3.0
            sd = sigma_r * ds
            pred[_P_P00 + ax, t] = v + sd * sd
            c = p01 + ds * p11
            pred[_P_P01 + ax, t] = c + q * ds * ads / 2.0
            pred[_P_P11 + ax, t] = p11 + q * ads

    # coarse gate: the hard radius widened by half the spread of all extents (see gate.gate_pairs)
    reach = np.empty(2)
    for ax in range(2):
        hi = -np.inf
        lo = np.inf
        for m in range(n_meas):
            hi = _max(hi, meas[2 + ax, m])
            lo = _min(lo, meas[2 + ax, m])
        for t in range(n):
            hi = _max(hi, pred[_P_SIZE + ax, t])
            lo = _min(lo, pred[_P_SIZE + ax, t])
        reach[ax] = 0.5 * (hi - lo) + k[K_REACH]
    cand_t = np.empty(n * n_meas, np.int64)
    cand_m = np.empty(n * n_meas, np.int64)
    n_cand = 0
    for m in range(n_meas):
        zu = meas[0, m]
        zx = meas[1, m]
        for t in range(n):
            if abs(zu - pred[_P_POS, t]) <= reach[0] and abs(zx - pred[_P_POS + 1, t]) <= reach[1]:
                cand_t[n_cand] = t
                cand_m[n_cand] = m
                n_cand += 1

    # exact gate on the candidates, in the same order
    table = np.empty((_N_PAIR, n_cand))
    keep = np.empty(n_cand, np.bool_)
    tol = k[K_TOL]
    r0 = k[K_R0]
    d = np.empty(2)
    half = np.empty(2)
    excess = np.empty(2)
    d_eff = np.empty(2)
    s_inn = np.empty(2)
    d2 = np.empty(2)
    n_keep = 0
    for j in range(n_cand):
        t = cand_t[j]
        m = cand_m[j]
        ds_t = pred[_P_DS, t]
        for ax in range(2):
            d[ax] = meas[ax, m] - pred[_P_POS + ax, t]
            d_size = meas[2 + ax, m] - pred[_P_SIZE + ax, t]
            size_t = pred[_P_SIZE + ax, t]
            a_size = abs(d_size)
            limit = abs(ds_t) + tol if d_size > 0 else k[K_MAX_CUT] * size_t + tol
            explained = 1.0 if (a_size > tol and a_size <= limit) else 0.0
            half[ax] = a_size / 2.0 * explained
            excess[ax] = abs(d[ax]) - half[ax]
            d_eff[ax] = _max(excess[ax], 0.0)
            s_inn[ax] = pred[_P_P00 + ax, t] + r0
            one_side = excess[ax] * excess[ax] / s_inn[ax]
            sym = 0.5 * _min(half[ax], k[K_SYM] * size_t)
            both_sides = d[ax] * d[ax] / (s_inn[ax] + sym * sym)
            d2[ax] = _min(one_side, both_sides)
            table[2 + ax, j] = d_size
        dir_m = meas[4, m]
        if dir_m != 0:
            du_known = d[0] - -dir_m * table[2, j] / 2.0
            d_eff[0] = abs(du_known)
            d2[0] = du_known * du_known / s_inn[0]
            if dir_m < 0:
                hidden = _min(_max(-table[2, j] / _max(pred[_P_SIZE, t], 1.0), 0.0), 1.0)
                slack = 0.5 * pred[_P_SIZE + 1, t] * hidden
                dx_out = _max(abs(d[1]) - slack, 0.0)
                d2[1] = _min(d2[1], dx_out * dx_out / s_inn[1])
        table[0, j] = d[0]
        table[1, j] = d[1]
        table[4, j] = half[0]
        table[5, j] = half[1]
        table[6, j] = dir_m
        d2_sum = d2[0] + d2[1]
        table[7, j] = d2_sum
        ok = d_eff[0] * d_eff[0] + d_eff[1] * d_eff[1] <= k[K_GATE2] and d2_sum <= k[K_CHI2]
        keep[j] = ok
        if ok:
            n_keep += 1

    if n_keep == n_cand:
        rows, cols, out = cand_t[:n_cand].copy(), cand_m[:n_cand].copy(), table
    else:
        rows = np.empty(n_keep, np.int64)
        cols = np.empty(n_keep, np.int64)
        out = np.empty((_N_PAIR, n_keep))
        i = 0
        for j in range(n_cand):
            if keep[j]:
                rows[i] = cand_t[j]
                cols[i] = cand_m[j]
                out[:, i] = table[:, j]
                i += 1
    return rows, cols, out


@_jit
def correct(
    f: F64,
    ii: I64,
    votes: F64,
    rows: I64,
    cols: I64,
    pair_idx: I64,
    pred: F64,
    pairs: F64,
    s_mm: float,
    t_ns: int,
    has_prev: bool,
    t_prev_ns: int,
    scores: F64,
    class_ids: I64,
    k: F64,
) -> None:  # pragma: no cover - compiled
    """Fuse measurement ``cols[j]`` into track ``rows[j]`` with pair ``pair_idx[j]`` (``TrackTable.correct``).

    ``f``, ``ii`` and ``votes`` are the track table's buffers, written in place.
    """
    tol = k[K_TOL]
    r0 = k[K_R0]
    max_res = k[K_MAX_RES]
    min_hits = k[K_MIN_HITS]
    confirm_hits = k[K_CONFIRM_HITS]
    shift = np.empty(2)
    risk = np.empty(2)
    g = np.empty(2)
    innov = np.empty(2)
    k0 = np.empty(2)
    k1 = np.empty(2)
    for j in range(rows.size):
        r = rows[j]
        pj = pair_idx[j]
        m = cols[j]
        cut = pairs[6, pj]
        known = cut != 0
        leaving = cut < 0
        x_meas = pred[_P_POS + 1, r] + pairs[1, pj]
        for ax in range(2):
            inn = pairs[ax, pj]
            h = pairs[4 + ax, pj]
            g[ax] = 1.0 if pairs[2 + ax, pj] > 0 else 0.0
            shift[ax] = math.copysign(_min(h, abs(inn)), inn)
            hh = h / 2.0
            risk[ax] = hh * hh
        if known:
            shift[0] = -cut * pairs[2, pj] / 2.0
            risk[0] = k[K_RISK_KNOWN]
        if leaving:
            shift[1] = 0.0
            risk[1] = 0.0
        for ax in range(2):
            risk_grew = risk[ax] * g[ax]
            pos = pred[_P_POS + ax, r] + shift[ax] * g[ax]
            p00 = pred[_P_P00 + ax, r] + risk_grew
            rr = r0 + (risk[ax] - risk_grew)
            innov[ax] = pairs[ax, pj] - shift[ax]
            s = p00 + rr
            k0[ax] = p00 / s
            k1[ax] = pred[_P_P01 + ax, r] / s
            if known:
                k1[ax] = 0.0
            if leaving and ax == 1:
                k0[ax] = 0.0
            p01 = pred[_P_P01 + ax, r]
            p11 = pred[_P_P11 + ax, r]
            f[_U + ax, r] = pos + k0[ax] * innov[ax]
            vel = f[_VU + ax, r] + k1[ax] * innov[ax]
            f[_VU + ax, r] = _min(_max(vel, -max_res), max_res)
            one_minus_k0 = 1.0 - k0[ax]
            f[_PUU + ax, r] = one_minus_k0 * p00
            f[_PUV + ax, r] = one_minus_k0 * p01
            f[_PVV + ax, r] = p11 - k1[ax] * p01
        full = cut == 0
        if full and ii[_SEEN_FULL, r] == 0:
            f[_U + 1, r] = x_meas
            f[_PUU + 1, r] = r0
            f[_VU + 1, r] = 0.0
            f[_PUV + 1, r] = 0.0
            f[_PVV + 1, r] = k[K_INIT_RES2]
        if full:
            ii[_SEEN_FULL, r] = 1
        for ax in range(2):
            d_size = pairs[2 + ax, pj]
            gain = 1.0 if d_size > 0 else 0.1
            if abs(d_size) <= tol:
                gain = 0.3
            if known and ax == 0:
                gain = g[0]
            f[_LEN + ax, r] = f[_LEN + ax, r] + gain * d_size
        f[_S_REF, r] = s_mm
        f[_SCORE_SUM, r] = f[_SCORE_SUM, r] + scores[m]
        run_on = has_prev and ii[_T_LAST, r] == t_prev_ns
        if not run_on:
            f[_S_RUN, r] = s_mm
            ii[_RUN, r] = 0
        ii[_HITS, r] += 1
        ii[_RUN, r] += 1
        ii[_T_LAST, r] = t_ns
        evidence = ii[_HITS, r] >= min_hits
        if confirm_hits < min_hits:
            evidence = evidence or (ii[_RUN, r] >= confirm_hits and s_mm - f[_S_RUN, r] >= k[K_CONFIRM_TRAVEL])
        if k[K_NEEDS_FULL] != 0.0:
            evidence = evidence and ii[_SEEN_FULL, r] != 0
        if evidence:
            ii[_CONFIRMED, r] = 1
        c = class_ids[m]
        votes[r, c] = votes[r, c] + scores[m]


@_jit
def split_pairs(
    rows: I64, cols: I64, n_rows: int, n_cols: int
) -> tuple[I64, I64, I64, I64, int, int]:  # pragma: no cover - compiled
    """The unambiguous pairs and the rest, as ``assign.match_pairs`` splits them.

    Returns:
        ``(simple, hard, r_loc, c_loc, n_r, n_c)``: indices of the pairs whose
        track and measurement have no other candidate; indices of the others;
        their track's and measurement's rank among the tracks and measurements
        of the hard pairs (rows and columns of the solver's matrix) and the
        numbers of those.
    """
    per_row = np.zeros(n_rows, np.int64)
    per_col = np.zeros(n_cols, np.int64)
    for i in range(rows.size):
        per_row[rows[i]] += 1
        per_col[cols[i]] += 1
    n_simple = 0
    for i in range(rows.size):
        if per_row[rows[i]] == 1 and per_col[cols[i]] == 1:
            n_simple += 1
    simple = np.empty(n_simple, np.int64)
    hard = np.empty(rows.size - n_simple, np.int64)
    a = 0
    b = 0
    for i in range(rows.size):
        if per_row[rows[i]] == 1 and per_col[cols[i]] == 1:
            simple[a] = i
            a += 1
        else:
            hard[b] = i
            b += 1
    # ranks of the tracks and measurements that have a hard pair (ascending, as assign._compact gives them)
    rank_r = np.zeros(n_rows, np.int64)
    rank_c = np.zeros(n_cols, np.int64)
    for j in range(hard.size):
        rank_r[rows[hard[j]]] = 1
        rank_c[cols[hard[j]]] = 1
    n_r = 0
    for t in range(n_rows):
        if rank_r[t]:
            rank_r[t] = n_r
            n_r += 1
    n_c = 0
    for m in range(n_cols):
        if rank_c[m]:
            rank_c[m] = n_c
            n_c += 1
    r_loc = np.empty(hard.size, np.int64)
    c_loc = np.empty(hard.size, np.int64)
    for j in range(hard.size):
        r_loc[j] = rank_r[rows[hard[j]]]
        c_loc[j] = rank_c[cols[hard[j]]]
    return simple, hard, r_loc, c_loc, n_r, n_c


@_jit
def cost_args(
    hard: I64,
    rows: I64,
    cols: I64,
    pred: F64,
    meas: F64,
    r0: float,
    r0_sq: float,
    votes: F64,
    vote_sums: F64,
    class_ids: I64,
    k: F64,
) -> F64:  # pragma: no cover - compiled
    """What ``gate.pair_costs`` takes the logarithm of, for the pairs ``hard``: ``(4, H)``.

    Rows: the product of the innovation variances over ``r0**2``, the ratios of
    measured to tracked length and width, and the smoothed share of the track's
    votes for the measured class. ``numpy.log`` of it, then :func:`costs_from_logs`,
    give the costs ``pair_costs`` gives.
    """
    out = np.empty((4, hard.size))
    prior = k[K_VOTE_PRIOR]
    prior_all = k[K_VOTE_PRIOR_ALL]
    for j in range(hard.size):
        t = rows[hard[j]]
        m = cols[hard[j]]
        s0 = pred[_P_P00, t] + r0
        s1 = pred[_P_P00 + 1, t] + r0
        out[0, j] = s0 * s1 / r0_sq
        out[1, j] = meas[2, m] / pred[_P_SIZE, t]
        out[2, j] = meas[3, m] / pred[_P_SIZE + 1, t]
        out[3, j] = (votes[t, class_ids[m]] + prior) / (vote_sums[j] + prior_all)
    return out


@_jit
def costs_from_logs(hard: I64, rows: I64, pairs: F64, logs: F64, ii: I64, k: F64) -> F64:  # pragma: no cover - compiled
    """Association costs of the pairs ``hard`` from ``numpy.log`` of :func:`cost_args` (``gate.pair_costs``)."""
    out = np.empty(hard.size)
    for j in range(hard.size):
        nll = pairs[7, hard[j]] + logs[0, j]
        lr0 = logs[1, j] * logs[1, j]
        lr1 = logs[2, j] * logs[2, j]
        size_cost = _min((lr0 + lr1) / k[K_SIZE_LOG_SIGMA2], k[K_SIZE_COST_CAP])
        tentative = 1 - ii[_CONFIRMED, rows[hard[j]]]
        out[j] = nll + size_cost - k[K_CLASS_WEIGHT] * logs[3, j] + k[K_TENTATIVE_PENALTY] * tentative
    return out


@_jit
def solver_matrix(r_loc: I64, c_loc: I64, n_r: int, n_c: int, h_cost: F64, forbidden: float) -> F64:  # pragma: no cover
    """The solver's ``(n_r, n_c)`` cost matrix: the hard pairs' costs, ``forbidden`` elsewhere."""
    sub = np.empty((n_r, n_c))
    sub.fill(forbidden)
    for j in range(h_cost.size):
        sub[r_loc[j], c_loc[j]] = h_cost[j]
    return sub


@_jit
def matched_pairs(
    simple: I64, hard: I64, r_loc: I64, c_loc: I64, n_r: int, n_c: int, sr: I64, sc: I64
) -> I64:  # pragma: no cover - compiled
    """Indices of the matched pairs: the unambiguous ones, then the solver's allowed cells in its order."""
    pair_at = np.full((n_r, n_c), -1, np.int64)
    for j in range(hard.size):
        pair_at[r_loc[j], c_loc[j]] = hard[j]
    n_ok = 0
    for i in range(sr.size):
        if pair_at[sr[i], sc[i]] >= 0:
            n_ok += 1
    out = np.empty(simple.size + n_ok, np.int64)
    out[: simple.size] = simple
    a = simple.size
    for i in range(sr.size):
        v = pair_at[sr[i], sc[i]]
        if v >= 0:
            out[a] = v
            a += 1
    return out


@_jit
def measurements(
    y_w: F64, x: F64, length: F64, width: F64, s_mm: float, min_extent_mm: float, view: F64
) -> F64:  # pragma: no cover - compiled
    """The measurement table (``gate.MEAS_*`` rows) as ``BeltTracker.update`` and ``motion.edge_cut_dir`` build it.

    ``view``: ``(has_lo, lo + margin, has_hi, hi - margin)`` of the view ends.
    """
    n = y_w.size
    out = np.empty((5, n))
    for m in range(n):
        out[0, m] = y_w[m] - s_mm
        out[1, m] = x[m]
        out[2, m] = _max(length[m], min_extent_mm)
        out[3, m] = _max(width[m], min_extent_mm)
        half_len = out[2, m] / 2.0
        entering = view[0] != 0.0 and y_w[m] - half_len <= view[1]
        leaving = view[2] != 0.0 and y_w[m] + half_len >= view[3]
        out[4, m] = (1.0 if entering else 0.0) - (1.0 if leaving else 0.0)
    return out


@_jit
def retire(
    f: F64, ii: I64, votes: F64, n: int, s_mm: float, t_min_ns: int, has_prev: bool, t_prev_ns: int, max_travel: F64
) -> tuple[I64, int]:  # pragma: no cover - compiled
    """Remove the tracks ``BeltTracker._retire`` retires, compacting the buffers in place (order kept).

    Args:
        t_min_ns: a track last seen before this is aged.
        max_travel: ``(2,)`` unseen travel limit of tentative and confirmed tracks.

    Returns:
        ``(aged, n_left)``: the retired tracks' columns before the removal, and the live tracks left.
    """
    aged = np.empty(n, np.int64)
    n_aged = 0
    w = 0
    for t in range(n):
        t_last = ii[_T_LAST, t]
        old = s_mm - f[_S_REF, t] > max_travel[ii[_CONFIRMED, t]] or t_last < t_min_ns
        if has_prev and t_last == t_prev_ns:
            old = False
        if old:
            aged[n_aged] = t
            n_aged += 1
            continue
        if w != t:
            for row in range(f.shape[0]):
                f[row, w] = f[row, t]
            for row in range(ii.shape[0]):
                ii[row, w] = ii[row, t]
            for c in range(votes.shape[1]):
                votes[w, c] = votes[t, c]
        w += 1
    return aged[:n_aged].copy(), w


@_jit
def columns(
    f: F64, ii: I64, votes: F64, n: int, vote_sums: F64, prior: float, prior_all: float, min_residual: float
) -> tuple[F64, I64, F64]:  # pragma: no cover - compiled
    """The rows ``TrackTable.columns`` exports: ``(fl, ii_out, votes_copy)`` as it computes them."""
    n_classes = votes.shape[1]
    fl = np.empty((10, n))
    io = np.empty((6, n), np.int64)
    vo = np.empty((n, n_classes))
    for t in range(n):
        best = 0
        for c in range(n_classes):
            v = votes[t, c]
            vo[t, c] = v
            if v > vo[t, best]:
                best = c
        fl[0, t] = (vo[t, best] + prior) / (vote_sums[t] + prior_all)
        fl[1, t] = f[_U, t]
        fl[2, t] = f[_U + 1, t]
        for ax in range(2):
            vel = f[_VU + ax, t]
            fl[3 + ax, t] = 0.0 if abs(vel) <= min_residual else vel
        fl[5, t] = f[_LEN, t]
        fl[6, t] = f[_LEN + 1, t]
        fl[7, t] = np.sqrt(f[_PUU, t])
        fl[8, t] = np.sqrt(f[_PUU + 1, t])
        fl[9, t] = f[_S_REF, t]
        io[0, t] = ii[_ID, t]
        io[1, t] = best
        io[2, t] = ii[_T_FIRST, t]
        io[3, t] = ii[_T_LAST, t]
        io[4, t] = ii[_HITS, t]
        io[5, t] = ii[_CONFIRMED, t]
    return fl, io, vo


@_jit
def start_tracks(
    f: F64,
    ii: I64,
    votes: F64,
    n0: int,
    meas: F64,
    matched_t: I64,
    matched_m: I64,
    next_id: int,
    s_mm: float,
    t_ns: int,
    scores: F64,
    class_ids: I64,
    k: F64,
) -> tuple[I64, int]:  # pragma: no cover - compiled
    """The track of each measurement, starting one track per unmatched measurement (``TrackTable.append``).

    The buffers must have room for every unmatched measurement after column ``n0``.

    Returns:
        ``(meas_ids, n_new)``: the track id of each measurement and the number of tracks started.
    """
    n_meas = meas.shape[1]
    meas_ids = np.zeros(n_meas, np.int64)
    for j in range(matched_m.size):
        meas_ids[matched_m[j]] = ii[_ID, matched_t[j]]
    r0 = k[K_R0]
    init_res2 = k[K_INIT_RES2]
    single = k[K_SINGLE_SCORE]
    first = k[K_CONFIRM_FIRST] != 0.0
    needs_full = k[K_NEEDS_FULL] != 0.0
    t = n0
    for m in range(n_meas):
        if meas_ids[m] != 0:
            continue
        meas_ids[m] = next_id
        next_id += 1
        for ax in range(2):
            f[_U + ax, t] = meas[ax, m]
            f[_LEN + ax, t] = meas[2 + ax, m]
            f[_PUU + ax, t] = r0
            f[_VU + ax, t] = 0.0
            f[_PUV + ax, t] = 0.0
            f[_PVV + ax, t] = init_res2
        f[_S_REF, t] = s_mm
        f[_S_RUN, t] = s_mm
        f[_SCORE_SUM, t] = scores[m]
        full = meas[4, m] == 0
        ii[_ID, t] = meas_ids[m]
        ii[_T_FIRST, t] = t_ns
        ii[_T_LAST, t] = t_ns
        ii[_HITS, t] = 1
        ii[_RUN, t] = 1
        ii[_SEEN_FULL, t] = 1 if full else 0
        confirmed = first or scores[m] >= single  # False against NaN (no single-view rule)
        if needs_full and not full:
            confirmed = False
        ii[_CONFIRMED, t] = 1 if confirmed else 0
        votes[t, :] = 0.0
        votes[t, class_ids[m]] = scores[m]
        t += 1
    return meas_ids, t - n0


#: every kernel an update may call, for the tracker's warm-up to check it compiled them all
KERNELS = (
    "predict_gate",
    "correct",
    "split_pairs",
    "cost_args",
    "costs_from_logs",
    "solver_matrix",
    "matched_pairs",
    "measurements",
    "retire",
    "columns",
    "start_tracks",
)
