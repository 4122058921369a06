"""Assignment solver: exact against brute force, and the sparse gated front end.

``hungarian`` wraps ``scipy.optimize.linear_sum_assignment``; the front end
matches unambiguous pairs directly and sends the rest to it in one call.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sorter.track.assign import assign_pairs, hungarian, match_pairs


def _brute_force_min(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return min(float(sum(cost[i, p[i]] for i in range(n))) for p in itertools.permutations(range(m), n))
    return min(float(sum(cost[p[j], j] for j in range(m))) for p in itertools.permutations(range(n), m))


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (2, 4), (4, 2), (3, 5), (5, 3), (6, 6)])
def test_hungarian_matches_brute_force(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape) * 7 + shape[0])
    for _ in range(20):
        cost = rng.uniform(0.0, 10.0, size=shape)
        rows, cols = hungarian(cost)
        assert rows.size == min(shape)
        assert len(set(rows.tolist())) == rows.size and len(set(cols.tolist())) == cols.size
        assert float(cost[rows, cols].sum()) == pytest.approx(_brute_force_min(cost), abs=1e-9)


def test_hungarian_with_ties_and_integers() -> None:
    cost = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rows, cols = hungarian(cost)
    assert float(cost[rows, cols].sum()) == 2.0
    assert dict(zip(rows.tolist(), cols.tolist(), strict=True))[2] == 2


def test_assign_pairs_simple_pairs_and_components() -> None:
    # tracks 0,1 compete for measurements 0,1 (crossing); track 2 alone with measurement 3; track 3 ungated.
    rows = np.array([0, 0, 1, 1, 2], np.int64)
    cols = np.array([0, 1, 0, 1, 3], np.int64)
    cost = np.array([5.0, 1.0, 1.0, 5.0, 2.0])
    r, c = assign_pairs(rows, cols, cost, n_rows=4, n_cols=4)
    got = dict(zip(r.tolist(), c.tolist(), strict=True))
    assert got == {0: 1, 1: 0, 2: 3}


def test_assign_pairs_prefers_more_matches_over_lower_cost() -> None:
    # greedy would give track 0 measurement 0 (cost 1) and leave track 1 without one.
    rows = np.array([0, 0, 1], np.int64)
    cols = np.array([0, 1, 0], np.int64)
    cost = np.array([1.0, 3.0, 2.0])
    r, c = assign_pairs(rows, cols, cost, n_rows=2, n_cols=2)
    assert dict(zip(r.tolist(), c.tolist(), strict=True)) == {0: 1, 1: 0}


def test_assign_pairs_random_against_dense_hungarian() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        n_t, n_m = rng.integers(1, 7, size=2)
        gate = rng.random((n_t, n_m)) < 0.4
        cost_dense = rng.uniform(0, 10, size=(n_t, n_m))
        rows, cols = np.nonzero(gate)
        r, c = assign_pairs(rows.astype(np.int64), cols.astype(np.int64), cost_dense[rows, cols], int(n_t), int(n_m))
        assert np.all(gate[r, c])
        assert len(set(r.tolist())) == r.size and len(set(c.tolist())) == c.size
        # same cardinality and cost as one dense solve with a big "forbidden" cost
        big = np.where(gate, cost_dense, 1e6)
        dr, dc = hungarian(big)
        keep = gate[dr, dc]
        assert r.size == int(keep.sum())
        assert float(cost_dense[r, c].sum()) == pytest.approx(float(cost_dense[dr[keep], dc[keep]].sum()), abs=1e-6)


def test_costs_are_asked_only_for_ambiguous_pairs() -> None:
    asked: list[list[int]] = []

    def costs(idx: np.ndarray) -> np.ndarray:
        asked.append(idx.tolist())
        return np.array([5.0, 1.0, 1.0, 5.0])[idx - 1]

    # pair 0 (track 2, measurement 3) is unambiguous; pairs 1-4 are a crossing of tracks 0, 1
    rows = np.array([2, 0, 0, 1, 1], np.int64)
    cols = np.array([3, 0, 1, 0, 1], np.int64)
    idx, n_solved = match_pairs(rows, cols, 3, 4, costs)
    assert asked == [[1, 2, 3, 4]] and n_solved == 4
    assert idx is not None and sorted(zip(rows[idx].tolist(), cols[idx].tolist(), strict=True)) == [(0, 1), (1, 0), (2, 3)]
    asked.clear()
    idx, n_solved = match_pairs(rows[:1], cols[:1], 3, 4, costs)
    assert idx is None and n_solved == 0 and asked == []  # every pair matched, no cost needed


def _best_matching(pairs: list[tuple[int, int, float]]) -> tuple[int, float]:
    """Brute force: the most pairs, then the least cost, over every matching of a small component."""
    best = (0, 0.0)
    for k in range(1, len(pairs) + 1):
        for sub in itertools.combinations(pairs, k):
            if len({p[0] for p in sub}) == k and len({p[1] for p in sub}) == k:
                cand = (k, sum(p[2] for p in sub))
                if cand[0] > best[0] or (cand[0] == best[0] and cand[1] < best[1]):
                    best = cand
    return best


def test_block_solve_equals_solving_each_component_apart() -> None:
    # several components of different shapes in one call: the forbidden cost must not trade a pair
    # of one component for a cheaper matching of another
    rng = np.random.default_rng(11)
    for _ in range(40):
        rows_l, cols_l, cost_l, comps = [], [], [], []
        r0 = c0 = 0
        for _ in range(int(rng.integers(2, 5))):
            n_t, n_m = (int(v) for v in rng.integers(1, 4, size=2))
            gate = rng.random((n_t, n_m)) < 0.6
            gate[0, 0] = True
            rr, cc = np.nonzero(gate)
            cost = rng.uniform(0, 50, rr.size)
            comps.append((r0, r0 + n_t, [(int(a) + r0, int(b) + c0, float(x)) for a, b, x in zip(rr, cc, cost, strict=True)]))
            rows_l.append(rr + r0)
            cols_l.append(cc + c0)
            cost_l.append(cost)
            r0 += n_t
            c0 += n_m
        r, c = assign_pairs(np.concatenate(rows_l), np.concatenate(cols_l), np.concatenate(cost_l), r0, c0)
        got = dict(zip(r.tolist(), c.tolist(), strict=True))
        assert len(set(got.values())) == len(got)
        for lo, hi, pairs in comps:
            cost_of = {(a, b): x for a, b, x in pairs}
            mine = [(k, v) for k, v in got.items() if lo <= k < hi]
            assert all(m in cost_of for m in mine)  # only allowed pairs, never across components
            n_best, cost_best = _best_matching(pairs)
            assert len(mine) == n_best
            assert sum(cost_of[m] for m in mine) == pytest.approx(cost_best)
