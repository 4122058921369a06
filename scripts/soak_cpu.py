"""The CPUs under a soak: at which priority its processes run, and where a heartbeat gap comes from.

``renice`` and ``describe_priority`` set and read back (from the kernel) the
scheduling of every thread of a process.

On a virtual machine a vCPU that the hypervisor does not run stalls everything
on it, the controller's peer included, and the guest sees it only as *steal*
time. ``CpuSampler`` reads ``/proc/stat`` every ``period_s`` (a thread; the
counters are cumulative, so a late sample only widens an interval, it never
loses time) and ``attribute_gaps`` says, for every gap between heartbeats longer
than a threshold, what each CPU's steal, iowait, irq, softirq and idle time did
over the sampled interval that covers it. Used by ``scripts/soak_link.py``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def thread_ids(pid: int) -> list[int]:
    """Every thread of process ``pid`` (Linux: niceness and policy are per thread)."""
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return [pid]


def thread_name(pid: int, tid: int) -> str:
    """The kernel's name of a thread (``comm``: what ``top -H`` shows; the link names its threads), or ""."""
    try:
        with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def renice(pid: int, nice: int) -> str:
    """Set the niceness of every thread of ``pid`` to ``nice``; "" when done, else why not."""
    for tid in thread_ids(pid):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:
            continue  # a thread that ended meanwhile
        except OSError as e:
            return f"nice {nice} refused for process {pid} ({e.strerror or e}); run as root or grant CAP_SYS_NICE"
    return ""


def describe_priority(pid: int | None) -> str:
    """How the kernel schedules the threads of ``pid`` now, e.g. ``SCHED_FIFO 20`` or ``nice -10 (3 threads)``."""
    if pid is None:
        return "-"
    seen: dict[str, int] = {}
    for tid in thread_ids(pid):
        try:
            policy = os.sched_getscheduler(tid)
            if policy in (os.SCHED_FIFO, os.SCHED_RR):
                name = "SCHED_FIFO" if policy == os.SCHED_FIFO else "SCHED_RR"
                what = f"{name} {os.sched_getparam(tid).sched_priority}"
            else:
                what = f"nice {os.getpriority(os.PRIO_PROCESS, tid)}"
        except OSError:
            continue
        seen[what] = seen.get(what, 0) + 1
    return ", ".join(f"{w} ({n} thread{'s' if n > 1 else ''})" for w, n in seen.items()) or "gone"


FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
SHOWN = ("steal", "iowait", "irq", "softirq", "idle")  # per gap; user/system are the hogs' own, everywhere


def parse_proc_stat(text: str) -> dict[str, list[int]]:
    """The jiffy counters of the ``cpu`` (all) and ``cpuN`` lines of ``/proc/stat``, in ``FIELDS`` order."""
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        if not line.startswith("cpu"):
            continue
        name, *values = line.split()
        nums = [int(v) for v in values[: len(FIELDS)]]
        out[name] = nums + [0] * (len(FIELDS) - len(nums))  # old kernels lack the last columns
    return out


@dataclass
class CpuSampler:
    """Samples ``/proc/stat`` every ``period_s`` in a thread, with the monotonic time of each read."""

    period_s: float = 0.1
    path: str = "/proc/stat"
    cpus: list[str] = field(default_factory=list)  # "cpu" (all) first, then cpu0, cpu1, ...
    t_ns: list[int] = field(default_factory=list)
    rows: list[list[list[int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        with open(self.path, encoding="ascii") as f:
            text = f.read()
        t = time.monotonic_ns()
        counters = parse_proc_stat(text)
        if not self.cpus:
            self.cpus = ["cpu", *sorted((c for c in counters if c != "cpu"), key=lambda c: int(c[3:]))]
        self.t_ns.append(t)
        self.rows.append([counters.get(c, [0] * len(FIELDS)) for c in self.cpus])

    def start(self) -> CpuSampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="soak-cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample()

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(t_ns[n], jiffies[n, cpus, FIELDS])``."""
        return np.asarray(self.t_ns, dtype=np.int64), np.asarray(self.rows, dtype=np.int64)


def jiffy_ms() -> float:
    """Milliseconds per ``/proc/stat`` tick (USER_HZ, 100 on Linux)."""
    return 1000.0 / os.sysconf("SC_CLK_TCK")


def summarise(sampler: CpuSampler, ms_per_jiffy: float) -> dict[str, Any]:
    """Totals over the soak per CPU (ms of each field) and how often steal showed up in one sampled interval."""
    t, j = sampler.arrays()
    if len(t) < 2:
        return {}
    d = np.diff(j, axis=0)  # [intervals, cpus, fields]
    steal = FIELDS.index("steal")
    per_cpu = {c: {f: round(float(j[-1, i, k] - j[0, i, k]) * ms_per_jiffy) for k, f in enumerate(FIELDS)}
               for i, c in enumerate(sampler.cpus)}
    span_s = (t[-1] - t[0]) / 1e9
    return {
        "samples": len(t),
        "span_s": round(float(span_s), 1),
        "sample_interval_ms": {"p50": round(float(np.median(np.diff(t))) / 1e6, 1),
                               "max": round(float(np.diff(t).max()) / 1e6, 1)},
        "ms_per_cpu": per_cpu,
        "steal_share": {c: round(per_cpu[c]["steal"] / (span_s * 1e3), 4) for c in sampler.cpus[1:]},
        # the base rate against which "steal rose during a gap" is to be read
        "intervals_with_steal": round(float((d[:, 1:, steal] > 0).any(axis=1).mean()), 3),
    }


def attribute_gaps(
    hb_ns: list[int], sampler: CpuSampler, threshold_ms: float, ms_per_jiffy: float, t0_ns: int
) -> list[dict[str, Any]]:
    """Each gap between heartbeats over ``threshold_ms``, with what every CPU's counters did around it.

    The counters are read over the smallest sampled interval that covers the gap (from the last
    sample at or before the previous heartbeat to the first at or after this one), so a window is
    up to two sample periods longer than its gap. ``steal_rose``: some CPU's steal counter moved
    in that window.
    """
    t, j = sampler.arrays()
    hb = np.asarray(hb_ns, dtype=np.int64)
    if hb.size < 2 or t.size < 2:
        return []
    gaps_ms = np.diff(hb) / 1e6
    cols = [FIELDS.index(f) for f in SHOWN]
    out: list[dict[str, Any]] = []
    for k in np.flatnonzero(gaps_ms > threshold_ms):
        a, b = int(hb[k]), int(hb[k + 1])
        i0 = max(int(np.searchsorted(t, a, side="right")) - 1, 0)
        i1 = min(int(np.searchsorted(t, b, side="left")), len(t) - 1)
        d = (j[i1] - j[i0]) * ms_per_jiffy  # [cpus, fields]
        per_cpu = {c: {f: round(float(d[i, col])) for f, col in zip(SHOWN, cols, strict=True)}
                   for i, c in enumerate(sampler.cpus) if i > 0}
        out.append({
            "at_s": round((a - t0_ns) / 1e9, 2),
            "gap_ms": round(float(gaps_ms[k]), 1),
            "window_ms": round((int(t[i1]) - int(t[i0])) / 1e6, 1),
            "covered": bool(t[i0] <= a and t[i1] >= b),
            "per_cpu_ms": per_cpu,
            "steal_rose": any(v["steal"] > 0 for v in per_cpu.values()),
        })
    return out


def gap_lines(line: str, gaps: list[dict[str, Any]], limit: int = 40) -> list[str]:
    """One printed line per gap (the first ``limit``), e.g. ``serial gap at 12.30 s: 312 ms ... steal ROSE``."""
    out = []
    for g in gaps[:limit]:
        cpus = "; ".join(f"{c} " + " ".join(f"{f} {v}" for f, v in m.items()) for c, m in g["per_cpu_ms"].items())
        out.append(f"{line} gap at {g['at_s']:.2f} s: {g['gap_ms']:.0f} ms (counters over {g['window_ms']:.0f} ms: "
                   f"{cpus}) -> steal {'ROSE' if g['steal_rose'] else 'flat'}")
    if len(gaps) > limit:
        out.append(f"{line}: {len(gaps) - limit} more gaps in the JSON")
    return out


def cpu_lines(c: dict[str, Any]) -> str:
    """The CPUs over the soak from /proc/stat: steal (the hypervisor not running a vCPU), iowait, irq, softirq."""
    if not c:
        return "cpu: no /proc/stat samples"
    per = "; ".join(f"{name} steal {m['steal']} iowait {m['iowait']} irq {m['irq']} softirq {m['softirq']} idle "
                    f"{m['idle']}" for name, m in c["ms_per_cpu"].items() if name != "cpu")
    share = ", ".join(f"{k} {v:.2%}" for k, v in c["steal_share"].items())
    return (f"cpu over {c['span_s']} s (ms, /proc/stat every {c['sample_interval_ms']['p50']} ms, longest interval "
            f"{c['sample_interval_ms']['max']} ms): {per}\nsteal share {share}; "
            f"{c['intervals_with_steal']:.1%} of sampled intervals saw steal (the base rate for 'steal ROSE')")


@dataclass
class WaitSampler:
    """Where the threads of the watched processes sleep in the kernel (``/proc/PID/task/TID/wchan``).

    A thread that waits in ``__flush_work`` is inside a poll or read of a terminal waiting for that
    terminal's pending flip-buffer work (``flush_to_ldisc``), which a kernel worker at normal
    priority runs: the thread, whatever its own priority, waits until that worker gets a CPU.
    """

    pids: dict[str, int]  # label -> process id
    period_s: float = 0.01
    samples: dict[str, dict[str, int]] = field(default_factory=dict)  # "label TID name" -> wchan -> samples
    longest_ms: dict[str, float] = field(default_factory=dict)  # "label TID name" -> longest run in __flush_work
    _since: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> WaitSampler:
        self._thread = threading.Thread(target=self._run, name="soak-wait-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            now = time.monotonic()
            for label, pid in self.pids.items():
                for tid in thread_ids(pid):
                    try:
                        with open(f"/proc/{pid}/task/{tid}/wchan", encoding="ascii") as f:
                            where = f.read().strip() or "running"
                    except OSError:
                        continue
                    key = f"{label} {tid} {thread_name(pid, tid)}"
                    seen = self.samples.setdefault(key, {})
                    seen[where] = seen.get(where, 0) + 1
                    if where == "__flush_work":
                        since = self._since.setdefault(key, now)
                        self.longest_ms[key] = max(self.longest_ms.get(key, 0.0), (now - since) * 1e3)
                    else:
                        self._since.pop(key, None)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per thread: samples, how many in ``__flush_work`` and the longest such run (ms, at the sampling period)."""
        return {k: {"samples": sum(c.values()), "in_flush_work": c.get("__flush_work", 0),
                    "flush_work_longest_ms": round(self.longest_ms.get(k, 0.0)),
                    "top": dict(sorted(c.items(), key=lambda kv: -kv[1])[:3])}
                for k, c in ((k, dict(c)) for k, c in list(self.samples.items()))}  # safe while sampling


def wait_lines(summary: dict[str, dict[str, Any]]) -> list[str]:
    """One line per thread that was seen waiting for a terminal's flip-buffer work."""
    out = [f"{k}: {v['in_flush_work']} of {v['samples']} samples waiting in __flush_work (a tty's flip-buffer "
           f"kworker), longest {v['flush_work_longest_ms']} ms" for k, v in summary.items() if v["in_flush_work"]]
    return out or ["no watched thread was seen waiting in __flush_work"]
