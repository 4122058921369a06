"""The PLC's count judged for speed over the longer of the host's span and the PLC's own clock (pure)."""

from __future__ import annotations

from firmware_bridge.modbus_epochs import EpochWatch

MS = 1_000_000


def test_a_slow_answer_or_simulated_time_is_no_jump_but_a_count_faster_than_the_belt_is() -> None:
    w = EpochWatch(max_counts_per_s=10_000.0, backward_tolerance_counts=5)
    assert w.observe(7, 1, 0, 0, 1 * MS, device_time_us=0) is None and w.known
    # the poll sent at 10 ms was answered at 400 ms: the host's span (0 .. 400 ms) allows 4000 counts
    assert w.observe(7, 1, 3900, 10 * MS, 400 * MS, device_time_us=20_000) is None
    # the PLC's encoder on simulated time: 3 s of belt between polls 5 ms apart on the host
    assert w.observe(7, 1, 33_000, 405 * MS, 406 * MS, device_time_us=3_020_000) is None
    # 20,000 counts in 50 ms on both clocks: a jump
    c = w.observe(7, 1, 53_000, 450 * MS, 455 * MS, device_time_us=3_070_000)
    assert c is not None and c.kind == "jump" and c.same_plc and "jumped from 33000 to 53000" in c.why
    # a PLC without a readable clock: the host's span alone
    assert w.observe(7, 1, 53_400, 490 * MS, 491 * MS, device_time_us=None) is None
    c = w.observe(7, 1, 60_000, 500 * MS, 501 * MS, device_time_us=None)
    assert c is not None and c.kind == "jump"


def test_announced_changes_come_first() -> None:
    w = EpochWatch(max_counts_per_s=10_000.0)
    assert w.observe(7, 1, 100, 0, MS, device_time_us=0) is None
    c = w.observe(7, 2, 0, 2 * MS, 3 * MS, device_time_us=2000)
    assert c is not None and c.kind == "epoch" and c.same_plc
    c = w.observe(8, 1, 5_000_000, 4 * MS, 5 * MS, device_time_us=10)
    assert c is not None and c.kind == "restart" and not c.same_plc
