"""The soak's peer priority: set on every thread of a process and read back from the kernel (``scripts/soak_cpu.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import ModuleType

from script_module import load_script


def _soak() -> ModuleType:
    return load_script("soak_cpu")


def test_renice_reaches_every_thread_and_the_kernel_says_so() -> None:
    soak = _soak()
    code = ("import threading, time\n"
            "[threading.Thread(target=time.sleep, args=(30,), daemon=True).start() for _ in range(2)]\n"
            "time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code])
    base = os.nice(0)  # the child's niceness: this process's
    nicer = min(base + 7, 19)
    try:
        t_end = time.monotonic() + 20.0
        while len(soak.thread_ids(child.pid)) < 3 and time.monotonic() < t_end:  # the child starts its two threads
            time.sleep(0.01)
        assert len(soak.thread_ids(child.pid)) == 3
        assert soak.describe_priority(child.pid) == f"nice {base} (3 threads)"
        assert soak.renice(child.pid, nicer) == ""  # raising niceness needs no privilege
        assert soak.describe_priority(child.pid) == f"nice {nicer} (3 threads)"
    finally:
        child.kill()
        child.wait()
    assert soak.describe_priority(None) == "-"
