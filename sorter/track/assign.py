"""Optimal assignment of measurements to tracks (pure numpy).

Most detections on a belt are unambiguous: exactly one track gates them and
they gate exactly one track. Those pairs are matched directly. The remaining
pairs are split into connected components of the gate graph (touching or
crossing objects, usually two or three of each) and each component is solved
exactly with the Hungarian algorithm, so the hot path never runs an
``O(n^3)`` solve over the whole scene.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: cost standing for "not allowed" inside a component (finite, so sums stay exact)
_FORBIDDEN = 1e12


def hungarian(cost: F64) -> tuple[I64, I64]:
    """Minimum-cost assignment of a rectangular cost matrix.

    Every row is assigned when ``rows <= cols`` (else every column). Uses the
    shortest-augmenting-path form of the Hungarian algorithm with potentials,
    the inner scan vectorised over columns: ``O(n^2 m)`` numpy work.

    Args:
        cost: ``(n, m)`` finite costs.

    Returns:
        ``(rows, cols)``: matched index pairs, sorted by row.
    """
    c = np.asarray(cost, dtype=np.float64)
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    if n == 0:
        e = np.zeros(0, np.int64)
        return e, e.copy()
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, np.int64)  # p[j]: row (1-based) matched to column j; 0 = free
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, np.bool_)
        while True:
            used[j0] = True
            i0 = p[j0]
            cur = c[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            masked = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(masked)) + 1
            delta = masked[j1 - 1]
            used_idx = np.flatnonzero(used)
            u[p[used_idx]] += delta
            v[used_idx] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0 != 0:
            j1 = int(way[j0])
            p[j0] = p[j1]
            j0 = j1
    cols = np.flatnonzero(p[1:] != 0).astype(np.int64)
    rows = (p[1:][cols] - 1).astype(np.int64)
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order], cols[order]


def _component_labels(rows: I64, cols: I64, n_rows: int) -> list[int]:
    """Label each edge of a bipartite edge list by its connected component (union-find)."""
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        root = a
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(a, a) != root:
            parent[a], a = root, parent[a]
        return root

    row_l = rows.tolist()
    col_l = cols.tolist()
    for r, c in zip(row_l, col_l, strict=True):
        ra, rb = find(r), find(n_rows + c)
        if ra != rb:
            parent[ra] = rb
    return [find(r) for r in row_l]


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
        ``(row_idx, col_idx)``: matched pairs, every index at most once.
    """
    if rows.size == 0:
        e = np.zeros(0, np.int64)
        return e, e.copy()
    row_deg = np.bincount(rows, minlength=n_rows)
    col_deg = np.bincount(cols, minlength=n_cols)
    simple = (row_deg[rows] == 1) & (col_deg[cols] == 1)
    out_r = [rows[simple]]
    out_c = [cols[simple]]
    hard = np.flatnonzero(~simple)
    if hard.size:
        h_rows, h_cols, h_cost = rows[hard], cols[hard], cost[hard]
        labels = np.asarray(_component_labels(h_rows, h_cols, n_rows))
        for label in np.unique(labels).tolist():
            sel = labels == label
            r_idx, r_loc = np.unique(h_rows[sel], return_inverse=True)
            c_idx, c_loc = np.unique(h_cols[sel], return_inverse=True)
            sub = np.full((r_idx.size, c_idx.size), _FORBIDDEN)
            sub[r_loc, c_loc] = h_cost[sel]
            sr, sc = hungarian(sub)
            ok = sub[sr, sc] < _FORBIDDEN
            out_r.append(r_idx[sr[ok]].astype(np.int64))
            out_c.append(c_idx[sc[ok]].astype(np.int64))
    return np.concatenate(out_r), np.concatenate(out_c)
