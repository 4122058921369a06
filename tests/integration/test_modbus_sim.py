"""The simulated line through the PLC emulator (Modbus TCP) matches the in-process valve bank, pulse for pulse.

The scenario, planner and comparison are those of ``test_serial_sim.py``.
"""

from __future__ import annotations

import pytest
from test_serial_sim import compare, lenient_watchdog

from sorter.config import load_config


def test_modbus_emulator_matches_the_in_process_bank(monkeypatch: pytest.MonkeyPatch) -> None:
    lenient_watchdog(monkeypatch)
    cfg = load_config(["sim-airjet-modbus.yaml"], ["sim.density_per_m2=6"])
    assert cfg.actuator.type == "modbus" and cfg.actuator.modbus.transport == "tcp"
    counts = compare(cfg, duration_s=6.0)
    assert counts["executed"] >= 10 and counts["late"] >= 2
