"""Latency accounting: per-stage samples in bounded buffers, percentiles on demand."""

from __future__ import annotations

import numpy as np


class LatencyRecorder:
    """Keeps the last ``capacity`` samples (ns) per stage; reports p50/p99 in ms."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._buf: dict[str, np.ndarray] = {}
        self._n: dict[str, int] = {}

    def add(self, stage: str, dt_ns: int) -> None:
        buf = self._buf.get(stage)
        if buf is None:
            buf = np.zeros(self._capacity, np.int64)
            self._buf[stage] = buf
            self._n[stage] = 0
        n = self._n[stage]
        buf[n % self._capacity] = dt_ns
        self._n[stage] = n + 1

    def last_ms(self, stage: str) -> float:
        """The most recent sample of ``stage`` in ms (0 before the first)."""
        n = self._n.get(stage, 0)
        return float(self._buf[stage][(n - 1) % self._capacity]) / 1e6 if n else 0.0

    def stages(self) -> list[str]:
        return list(self._buf)

    def samples_ms(self, stage: str, last_n: int | None = None) -> np.ndarray:
        """The kept samples of ``stage`` in ms; with ``last_n``, only the most recent ``last_n`` of them."""
        total = self._n.get(stage, 0)
        n = min(total, self._capacity)
        if not n:
            return np.zeros(0)
        if last_n is None or last_n >= n:
            return self._buf[stage][:n].astype(np.float64) / 1e6
        end = total % self._capacity
        idx = np.arange(end - last_n, end) % self._capacity  # the ring buffer may wrap
        return self._buf[stage][idx].astype(np.float64) / 1e6

    def summary_ms(self, last_n: int | None = None) -> dict[str, dict[str, float]]:
        """``{stage: {"p50": ms, "p99": ms, "max": ms}}``, over the most recent ``last_n`` samples per stage if given.

        A full buffer takes about 150 ms of CPU to summarise: callers on a schedule (the web snapshot) pass ``last_n``.
        """
        out: dict[str, dict[str, float]] = {}
        for stage in list(self._buf):
            v = self.samples_ms(stage, last_n)
            if v.size:
                out[stage] = {
                    "p50": round(float(np.percentile(v, 50)), 4),
                    "p99": round(float(np.percentile(v, 99)), 4),
                    "max": round(float(v.max()), 4),
                }
        return out


def percentiles(values: list[float] | np.ndarray) -> dict[str, float]:
    """``{"p50", "p99", "max", "n"}`` of a list (zeros when empty)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0, "n": 0}
    return {
        "p50": round(float(np.percentile(v, 50)), 3),
        "p99": round(float(np.percentile(v, 99)), 3),
        "max": round(float(v.max()), 3),
        "n": int(v.size),
    }
