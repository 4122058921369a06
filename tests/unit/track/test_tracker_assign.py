"""Assignment solver: exact against brute force, and the sparse gated front end."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sorter.track.assign import assign_pairs, hungarian


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
