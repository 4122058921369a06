"""Optimal assignment of measurements to tracks.

Most detections on a belt are unambiguous: exactly one track gates them and
they gate exactly one track. Those pairs are matched directly. The remaining
pairs (touching or crossing objects) are solved exactly in one call of
``scipy.optimize.linear_sum_assignment`` (the shortest-augmenting-path
Hungarian algorithm in C++) on the small matrix of their rows and columns, with
a forbidden cost on pairs outside the gate. The forbidden cost is larger than
any sum of allowed costs, so the solution is, within each connected component
of the gate graph, the matching with the most pairs and, among those, the
least total cost; solving all components at once gives the same pairs as
solving each apart.

``scipy.optimize`` takes about a second to import on a small CPU, so it is
imported on first use; :func:`load_solver` lets the tracker pay that at
construction (start-up) rather than in the first frame with touching objects.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@cache
def load_solver() -> Callable[..., Any]:
    """Import and return ``scipy.optimize.linear_sum_assignment`` (once)."""
    from scipy.optimize import linear_sum_assignment

    solver: Callable[..., Any] = linear_sum_assignment
    return solver


def hungarian(cost: F64) -> tuple[I64, I64]:
    """Minimum-cost assignment of a rectangular cost matrix.

    Every row is assigned when ``rows <= cols`` (else every column).

    Args:
        cost: ``(n, m)`` finite costs.

    Returns:
        ``(rows, cols)``: matched index pairs, sorted by row.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.size == 0:
        e = np.zeros(0, np.int64)
        return e, e.copy()
    rows, cols = load_solver()(c)
    return np.asarray(rows, np.int64), np.asarray(cols, np.int64)


def _compact(idx: I64, n: int) -> tuple[int, I64]:
    """Number of distinct values of ``idx`` and each entry's rank among them (sorted)."""
    used = np.zeros(n, np.int64)
    used[idx] = 1
    rank = used.cumsum()
    return int(rank[-1]), rank.take(idx) - 1


def assign_pairs(rows: I64, cols: I64, cost: F64, n_rows: int, n_cols: int) -> tuple[I64, I64]:
    """Assign rows (tracks) to columns (measurements) among allowed pairs.

    Within each connected component of the pair graph the matching first
    maximises the number of matched pairs, then minimises their total cost.

    Args:
        rows: ``(K,)`` row index of each allowed pair (pairs unique).
        cols: ``(K,)`` column index of each allowed pair.
        cost: ``(K,)`` cost of each allowed pair.
        n_rows: number of rows (tracks).
        n_cols: number of columns (measurements).

    Returns:
        ``(row_idx, col_idx)``: matched pairs, every index at most once; the
        unambiguous pairs first, in input order.
    """
    idx, _ = match_pairs(rows, cols, n_rows, n_cols, lambda k: cost[k])
    if idx is None:
        return rows, cols
    return rows[idx], cols[idx]


def match_pairs(rows: I64, cols: I64, n_rows: int, n_cols: int, costs: Callable[[I64], F64]) -> tuple[I64 | None, int]:
    """:func:`assign_pairs` returning the indices of the matched pairs, with costs on demand.

    Args:
        rows, cols, n_rows, n_cols: as for :func:`assign_pairs`.
        costs: cost of the pairs with the given indices; called at most once,
            only for pairs whose row or column has another candidate (an
            unambiguous pair is matched whatever its cost).

    Returns:
        ``(idx, n_solved)``: indices of the matched pairs (the unambiguous
        ones first, in input order), or ``None`` when every pair is matched
        (all unambiguous, the usual case), and the number of pairs that went
        to the solver.
    """
    if rows.size == 0:
        return None, 0
    simple = np.bincount(rows, minlength=n_rows).take(rows) == 1
    simple &= np.bincount(cols, minlength=n_cols).take(cols) == 1
    if np.count_nonzero(simple) == simple.size:
        return None, 0
    hard = (~simple).nonzero()[0]
    h_cost = costs(hard)
    n_r, r_loc = _compact(rows.take(hard), n_rows)
    n_c, c_loc = _compact(cols.take(hard), n_cols)
    # larger than the difference between any two matchings' allowed costs: one more pair always wins
    forbidden = 2.0 * float(np.add.reduce(np.abs(h_cost))) + 1.0
    sub = np.empty((n_r, n_c))
    sub.fill(forbidden)
    sub[r_loc, c_loc] = h_cost
    sr, sc = load_solver()(sub)
    pair_at = np.empty((n_r, n_c), np.int64)  # the hard pair of each cell, -1 where forbidden
    pair_at.fill(-1)
    pair_at[r_loc, c_loc] = hard
    solved = pair_at[sr, sc]
    return np.concatenate([simple.nonzero()[0], solved[solved >= 0]]), int(hard.size)
