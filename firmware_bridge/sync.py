"""Clock and encoder synchronisation from round-trip probes (pure logic).

Each probe (serial PING/PONG, or a Modbus read of the odometer registers) gives
a device reading taken somewhere between the host's send and receive times. The
reading is assigned to the midpoint; its error is at most half the round trip,
so only the probes with the lowest round trip in a recent window are trusted
(the classic NTP "minimum filter"). The belt speed in counts per host second
comes from two trusted probes far enough apart.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SyncSample:
    """One probe.

    Attributes:
        host_mid_ns: midpoint of send and receive, host monotonic ns.
        rtt_ns: round trip, ns (uncertainty is +-rtt/2).
        device_time_us: the device's clock in the answer.
        encoder_count: the device's encoder in the answer.
    """

    host_mid_ns: int
    rtt_ns: int
    device_time_us: int
    encoder_count: int


class SyncEstimator:
    """Keeps recent probes and answers "what does the device's encoder read at host time t".

    Thread-safe: the link's thread adds probes while others (a camera's capture thread) ask.

    Args:
        window_ns: probes older than this are forgotten (the belt speed changes).
        min_baseline_ns: the speed estimate needs trusted probes at least this far apart.
    """

    def __init__(self, window_ns: int = 2_000_000_000, min_baseline_ns: int = 100_000_000) -> None:
        self.window_ns = window_ns
        self.min_baseline_ns = min_baseline_ns
        self._samples: deque[SyncSample] = deque(maxlen=256)
        self._lock = threading.RLock()
        self.count = 0

    def add(self, t_send_ns: int, t_recv_ns: int, device_time_us: int, encoder_count: int) -> SyncSample:
        """Record a probe sent at ``t_send_ns`` and answered at ``t_recv_ns`` (host monotonic)."""
        s = SyncSample((t_send_ns + t_recv_ns) // 2, max(0, t_recv_ns - t_send_ns), device_time_us, encoder_count)
        with self._lock:
            self._samples.append(s)
            self.count += 1
            while self._samples and s.host_mid_ns - self._samples[0].host_mid_ns > self.window_ns:
                self._samples.popleft()
        return s

    def reset(self) -> None:
        """Forget every probe (the device's count restarted: old probes belong to another epoch)."""
        with self._lock:
            self._samples.clear()

    def best(self) -> SyncSample | None:
        """The probe with the lowest round trip in the window."""
        with self._lock:
            return min(self._samples, key=lambda s: s.rtt_ns) if self._samples else None

    def latest(self) -> SyncSample | None:
        """The most recent probe."""
        with self._lock:
            return self._samples[-1] if self._samples else None

    def rtt_stats_ns(self) -> tuple[int, int] | None:
        """(min, max) round trip in the window."""
        with self._lock:
            rtts = [s.rtt_ns for s in self._samples]
        if not rtts:
            return None
        return min(rtts), max(rtts)

    def speed_counts_per_s(self) -> float | None:
        """Belt speed from the best probe of the older and of the newer half of the window."""
        with self._lock:
            samples = list(self._samples)
        if len(samples) < 2:
            return None
        newest = samples[-1].host_mid_ns
        oldest = samples[0].host_mid_ns
        if newest - oldest < self.min_baseline_ns:
            return None
        split = (newest + oldest) // 2
        old = [s for s in samples if s.host_mid_ns <= split]
        new = [s for s in samples if s.host_mid_ns > split]
        a = min(old, key=lambda s: s.rtt_ns)
        b = min(new, key=lambda s: s.rtt_ns)
        dt = b.host_mid_ns - a.host_mid_ns
        if dt < self.min_baseline_ns // 2:
            return None
        return (b.encoder_count - a.encoder_count) * 1e9 / dt

    def anchor(self) -> SyncSample | None:
        """The newest probe whose round trip is close to the window's best (within 0.2 ms or twice the best).

        Extrapolating from it instead of from the best probe keeps the time over which a speed
        error accumulates short (one probe period rather than the window), at the cost of at most
        a slightly worse round trip.
        """
        with self._lock:
            if not self._samples:
                return None
            min_rtt = min(s.rtt_ns for s in self._samples)
            limit = min_rtt + max(200_000, min_rtt)
            return next(s for s in reversed(self._samples) if s.rtt_ns <= limit)

    def count_at(self, host_ns: int) -> float | None:
        """Estimated device encoder count at host time ``host_ns`` (None before any probe)."""
        anchor = self.anchor()
        if anchor is None:
            return None
        speed = self.speed_counts_per_s() or 0.0
        return anchor.encoder_count + speed * (host_ns - anchor.host_mid_ns) / 1e9

    def clock_offset_us(self) -> float | None:
        """device_time_us - host_time_us of the best probe (device clock minus host clock)."""
        best = self.best()
        return None if best is None else best.device_time_us - best.host_mid_ns / 1000.0
