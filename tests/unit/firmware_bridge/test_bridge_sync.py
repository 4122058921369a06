"""Clock/encoder sync: the lowest round trip wins, speed from two trusted probes."""

from __future__ import annotations

from firmware_bridge.sync import SyncEstimator

MS = 1_000_000


def test_lowest_round_trip_sample_is_trusted() -> None:
    s = SyncEstimator()
    # true encoder: 25 counts per ms from count 0 at host time 0; answers taken at the true midpoint + noise
    s.add(0, 4 * MS, 2000, 50)  # rtt 4 ms, the reading was taken at 2 ms
    s.add(10 * MS, 10 * MS + 200_000, 10_100, 252)  # rtt 0.2 ms
    s.add(20 * MS, 27 * MS, 23_500, 587)  # rtt 7 ms
    best = s.best()
    assert best is not None and best.rtt_ns == 200_000
    assert best.host_mid_ns == 10_100_000
    assert s.rtt_stats_ns() == (200_000, 7 * MS)


def test_speed_and_count_prediction() -> None:
    s = SyncEstimator(min_baseline_ns=50 * MS)
    for k in range(11):  # one probe every 20 ms over 200 ms; every third one slow
        t0 = k * 20 * MS
        rtt = 3 * MS if k % 3 else 100_000
        mid = t0 + rtt // 2
        s.add(t0, t0 + rtt, mid // 1000, round(mid * 25 / MS))
    speed = s.speed_counts_per_s()
    assert speed is not None and abs(speed - 25_000) < 10
    est = s.count_at(500 * MS)
    assert est is not None and abs(est - 12_500) < 5
    off = s.clock_offset_us()
    assert off is not None and abs(off) < 1


def test_window_forgets_old_probes() -> None:
    s = SyncEstimator(window_ns=100 * MS)
    s.add(0, 10_000, 0, 0)  # a very good old probe
    s.add(500 * MS, 502 * MS, 501_000, 100)
    best = s.best()
    assert best is not None and best.encoder_count == 100


def test_no_estimate_before_probes() -> None:
    s = SyncEstimator()
    assert s.best() is None and s.count_at(0) is None and s.speed_counts_per_s() is None


def test_count_is_extrapolated_from_a_recent_good_probe_not_an_old_best_one() -> None:
    s = SyncEstimator(window_ns=2000 * MS, min_baseline_ns=50 * MS)
    s.add(0, 100_000, 0, 0)  # the best round trip of the window, but 1.5 s old
    s.add(1000 * MS, 1000 * MS + 250_000, 0, 25_003)  # rtt 0.25 ms: within 0.2 ms of the best
    s.add(1500 * MS, 1500 * MS + 5 * MS, 0, 37_562)  # recent but slow: not trusted
    anchor = s.anchor()
    assert anchor is not None and anchor.encoder_count == 25_003
    # the belt sped up: the old best probe and the anchor give a different speed history; the anchor limits
    # the extrapolation to 0.5 s, from its own reading
    est = s.count_at(1500 * MS)
    speed = s.speed_counts_per_s()
    assert est is not None and speed is not None
    assert abs(est - (25_003 + speed * (1500 * MS - anchor.host_mid_ns) / 1e9)) < 1e-6
