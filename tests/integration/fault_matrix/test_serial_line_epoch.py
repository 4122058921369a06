"""Fault matrix, serial row on the whole line: the controller starts a new encoder epoch mid-run.

``sorter run --fast`` on the simulated line with the valve-controller emulator
behind a real socat pseudo-terminal pair; once commands are flowing, the
controller declares a new epoch (an operator re-zeroing its counter). The run
summary must add up: every command sent has exactly one outcome
(``sent == executed + late + rejected + cancelled + lost``), nothing executed
late, and sorting resumes in the new epoch.
"""

from __future__ import annotations

import threading
import time

from sorter.config import load_config
from sorter.runtime.line import build_line
from sorter.runtime.loops import run_line


def test_run_summary_adds_up_through_an_epoch_change() -> None:
    cfg = load_config("sim-airjet-serial.yaml", ["sim.density_per_m2=6", "sim.seed=5", "service.http_port=null"])
    line = build_line(cfg, fast=True)
    emu = line.actuator.emulator  # type: ignore[attr-defined]
    assert emu is not None
    stop = threading.Event()
    at_bump: dict[str, int] = {}

    def operator_reset() -> None:
        deadline = time.monotonic() + 120.0
        while line.counters.commands_executed < 3 and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.005)
        at_bump["executed"] = line.counters.commands_executed
        emu.core.new_epoch("operator re-zeroed the counter")

    bumper = threading.Thread(target=operator_reset, daemon=True)
    bumper.start()
    try:
        summary = run_line(line, 8.0, True, stop)
    finally:
        stop.set()
        bumper.join(5.0)
    a = summary["actuator"]
    assert a["link_epoch_changes"] == 1 and a["link_epoch"] == 2
    assert summary["commands_without_outcome"] == 0
    assert summary["commands_sent"] == (
        summary["commands_executed"]
        + summary["commands_late_sent"]
        + summary["commands_rejected"]
        + summary["commands_cancelled"]
        + summary["commands_lost"]
    )
    assert summary["commands_executed_late"] == 0
    assert summary["commands_executed"] > at_bump["executed"]  # sorting resumed in the new epoch
