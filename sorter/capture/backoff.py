"""Reconnect policy for capture sources: exponential backoff with a cap and jitter (pure).

Why jitter: several cameras on one switch or one RTSP server that vanish together
(power blip, network loss) must not all hammer the server in lock-step when it
comes back. Why a cap: a camera that is unplugged for an hour must still be
picked up within a few seconds of being plugged back in.
"""

from __future__ import annotations

import random
from typing import Protocol


class UniformRng(Protocol):
    """Anything with ``random() -> float`` uniform in [0, 1) (``random.Random`` qualifies)."""

    def random(self) -> float:
        """Return the next uniform sample in [0, 1)."""
        ...


class Backoff:
    """Delays between reconnect attempts, in seconds.

    Attempt ``n`` (0-based, counted since the last ``reset()``) waits
    ``min(max_s, initial_s * factor**n)`` scaled by a jitter factor drawn
    uniformly from ``[1 - jitter, 1 + jitter]``; the result never exceeds
    ``max_s`` (the cap is a hard bound, so the worst-case time to notice a
    returned device is known).

    Args:
        initial_s: delay before the first retry, in seconds.
        max_s: upper bound of any delay, in seconds.
        factor: growth per failed attempt (>= 1).
        jitter: relative jitter in [0, 1); 0 makes the policy deterministic.
        rng: source of uniform samples; injected so tests are reproducible.
            Defaults to a fresh ``random.Random()``.

    Raises:
        ValueError: if a parameter is out of range.
    """

    def __init__(
        self,
        initial_s: float = 0.1,
        max_s: float = 5.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        rng: UniformRng | None = None,
    ) -> None:
        if not initial_s > 0:
            raise ValueError(f"Backoff initial_s must be > 0 s, got {initial_s}")
        if not max_s >= initial_s:
            raise ValueError(f"Backoff max_s ({max_s} s) must be >= initial_s ({initial_s} s)")
        if not factor >= 1.0:
            raise ValueError(f"Backoff factor must be >= 1, got {factor}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"Backoff jitter must be in [0, 1), got {jitter}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        self._rng: UniformRng = rng if rng is not None else random.Random()
        self._attempts = 0

    @property
    def attempts(self) -> int:
        """Delays handed out since the last ``reset()``."""
        return self._attempts

    def next_delay_s(self) -> float:
        """Return the delay before the next attempt, in seconds, and count the attempt."""
        # Compute the exponent without overflow: once the cap is reached, stay there.
        base = self.initial_s
        for _ in range(self._attempts):
            base *= self.factor
            if base >= self.max_s:
                break
        base = min(base, self.max_s)
        self._attempts += 1
        if self.jitter == 0.0:
            return base
        scale = 1.0 + self.jitter * (2.0 * self._rng.random() - 1.0)
        return min(self.max_s, base * scale)

    def reset(self) -> None:
        """Forget past failures (call after a successful reconnect)."""
        self._attempts = 0
