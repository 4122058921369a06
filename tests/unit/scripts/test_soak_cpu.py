"""Where a heartbeat gap comes from: ``/proc/stat`` parsed, and each long gap given the counters around it."""

from __future__ import annotations

import subprocess
import sys
import time
from types import ModuleType

from script_module import load_script

STAT = """cpu  125152 0 13193 72358 5501 0 202 369 0 0
cpu0 56745 0 6248 40388 4717 0 18 182 0 0
cpu1 68406 0 6944 31969 783 0 183 187 0 0
intr 874957 0 0 0
ctxt 123
"""


def _cpu() -> ModuleType:
    return load_script("soak_cpu")


def test_proc_stat_lines_are_read_per_cpu_in_field_order() -> None:
    m = _cpu()
    c = m.parse_proc_stat(STAT)
    assert sorted(c) == ["cpu", "cpu0", "cpu1"]
    steal = m.FIELDS.index("steal")
    assert c["cpu1"][steal] == 187 and c["cpu0"][m.FIELDS.index("iowait")] == 4717
    assert m.parse_proc_stat("cpu0 1 2 3 4\n")["cpu0"] == [1, 2, 3, 4, 0, 0, 0, 0]  # old kernels: fewer columns


def _sampler(m: ModuleType, steal_at: dict[int, int]) -> object:
    """Samples every 100 ms for 2 s; cpu1's steal counter jumps by ``steal_at[i]`` jiffies at sample ``i``."""
    s = m.CpuSampler()
    s.cpus = ["cpu", "cpu0", "cpu1"]
    steal = m.FIELDS.index("steal")
    idle = m.FIELDS.index("idle")
    total = 0
    for i in range(21):
        total += steal_at.get(i, 0)
        row = [[0] * len(m.FIELDS) for _ in s.cpus]
        row[1][idle] = row[2][idle] = 5 * i  # half idle
        row[2][steal] = row[0][steal] = total
        s.t_ns.append(i * 100_000_000)
        s.rows.append(row)
    return s


def test_a_gap_over_the_threshold_says_whether_steal_rose_around_it() -> None:
    m = _cpu()
    s = _sampler(m, {5: 20})  # 200 ms of steal on cpu1 between samples 4 and 5 (0.4-0.5 s)
    hb = [0, 50_000_000, 420_000_000, 520_000_000, 1_280_000_000, 1_330_000_000]  # gaps over 100 ms: 370, 760
    gaps = m.attribute_gaps(hb, s, 100.0, 10.0, 0)
    assert [g["gap_ms"] for g in gaps] == [370.0, 760.0]
    first, second = gaps
    assert first["steal_rose"] and first["per_cpu_ms"]["cpu1"]["steal"] == 200
    assert first["per_cpu_ms"]["cpu0"]["steal"] == 0
    assert first["window_ms"] == 500.0 and first["covered"]  # samples 0 and 5 bracket 50-420 ms
    assert not second["steal_rose"]  # counters from 500 ms to 1300 ms: after the steal
    assert second["window_ms"] == 800.0
    assert second["per_cpu_ms"]["cpu1"]["idle"] == 400  # 8 intervals x 5 jiffies x 10 ms
    assert m.attribute_gaps(hb, s, 1000.0, 10.0, 0) == []


def test_the_summary_gives_steal_share_and_its_base_rate() -> None:
    m = _cpu()
    s = _sampler(m, {5: 20, 6: 10})
    out = m.summarise(s, 10.0)
    assert out["ms_per_cpu"]["cpu1"]["steal"] == 300
    assert out["steal_share"] == {"cpu0": 0.0, "cpu1": 0.15}  # 300 ms in 2 s
    assert out["intervals_with_steal"] == 0.1  # 2 of 20 intervals
    assert "steal share cpu0 0.00%, cpu1 15.00%" in m.cpu_lines(out)
    line = m.gap_lines("serial", m.attribute_gaps([0, 600_000_000], s, 100.0, 10.0, 0))[0]
    assert line.startswith("serial gap at 0.00 s: 600 ms") and line.endswith("steal ROSE")


def test_the_wait_sampler_reads_where_each_thread_of_a_process_sleeps() -> None:
    m = _cpu()
    code = "import threading, time\nthreading.Thread(target=time.sleep, args=(30,)).start()\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20.0
        while len(m.thread_ids(child.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        waits = m.WaitSampler({"sleeper": child.pid}, period_s=0.005).start()
        while time.monotonic() < deadline and sum(v["samples"] for v in waits.summary().values()) < 20:
            time.sleep(0.01)
        waits.stop()
    finally:
        child.kill()
        child.wait()
    summary = waits.summary()
    assert len(summary) == 2 and all(k.startswith("sleeper ") for k in summary)  # one entry per thread
    for v in summary.values():
        assert v["in_flush_work"] == 0 and v["samples"] == sum(v["top"].values())
        assert any("sleep" in w or "futex" in w for w in v["top"]), v["top"]  # both threads asleep in the kernel
    assert m.wait_lines(summary) == ["no watched thread was seen waiting in __flush_work"]
    assert m.wait_lines({"serial link 7": {"samples": 100, "in_flush_work": 3, "flush_work_longest_ms": 40,
                                           "top": {}}})[0].startswith("serial link 7: 3 of 100 samples waiting")
