"""Reconnect backoff: exponential growth, hard cap, bounded reproducible jitter, reset."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sorter.capture.backoff import Backoff


class FixedRng:
    """Returns the same uniform sample every time."""

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self) -> float:
        return self.u


def test_without_jitter_doubles_up_to_the_cap() -> None:
    b = Backoff(initial_s=0.1, max_s=1.0, factor=2.0, jitter=0.0)
    delays = [b.next_delay_s() for _ in range(7)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert b.attempts == 7


def test_reset_starts_over() -> None:
    b = Backoff(initial_s=0.05, max_s=2.0, jitter=0.0)
    for _ in range(5):
        b.next_delay_s()
    b.reset()
    assert b.attempts == 0
    assert b.next_delay_s() == pytest.approx(0.05)


def test_jitter_extremes_follow_the_injected_rng() -> None:
    low = Backoff(initial_s=1.0, max_s=10.0, jitter=0.25, rng=FixedRng(0.0))
    high = Backoff(initial_s=1.0, max_s=10.0, jitter=0.25, rng=FixedRng(0.999999))
    mid = Backoff(initial_s=1.0, max_s=10.0, jitter=0.25, rng=FixedRng(0.5))
    assert low.next_delay_s() == pytest.approx(0.75)
    assert high.next_delay_s() == pytest.approx(1.25, rel=1e-5)
    assert mid.next_delay_s() == pytest.approx(1.0)


def test_jitter_never_exceeds_the_cap() -> None:
    b = Backoff(initial_s=1.0, max_s=4.0, jitter=0.5, rng=FixedRng(0.999))
    assert max(b.next_delay_s() for _ in range(10)) <= 4.0


def test_same_seed_same_delays() -> None:
    a = Backoff(rng=random.Random(7))
    b = Backoff(rng=random.Random(7))
    assert [a.next_delay_s() for _ in range(20)] == [b.next_delay_s() for _ in range(20)]


def test_very_many_attempts_do_not_overflow() -> None:
    b = Backoff(initial_s=0.1, max_s=5.0, factor=10.0, jitter=0.0)
    for _ in range(5000):
        b.next_delay_s()
    assert b.next_delay_s() == 5.0


@given(
    initial_s=st.floats(0.001, 10.0),
    ratio=st.floats(1.0, 1000.0),
    factor=st.floats(1.0, 10.0),
    jitter=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_delays_stay_within_jitter_bounds_and_cap(
    initial_s: float, ratio: float, factor: float, jitter: float, seed: int
) -> None:
    max_s = initial_s * ratio
    b = Backoff(initial_s=initial_s, max_s=max_s, factor=factor, jitter=jitter, rng=random.Random(seed))
    base = initial_s
    for _ in range(30):
        d = b.next_delay_s()
        assert 0.0 < d <= max_s
        assert d >= min(base, max_s) * (1.0 - jitter) * (1 - 1e-9)
        base *= factor


@pytest.mark.parametrize(
    "kwargs",
    [{"initial_s": 0.0}, {"initial_s": 1.0, "max_s": 0.5}, {"factor": 0.5}, {"jitter": 1.0}, {"jitter": -0.1}],
)
def test_invalid_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**kwargs)
