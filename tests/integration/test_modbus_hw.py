"""``sorter hw`` against the PLC emulator (``--emulate``: a real pymodbus server on loopback)."""

from __future__ import annotations

import pytest

from sorter.cli import main


def test_hw_status_and_fire_test_over_modbus(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hw", "status", "--config", "sim-airjet-modbus.yaml", "--emulate"]) == 0
    assert "PLC at 127.0.0.1" in capsys.readouterr().out
    assert (
        main(
            ["hw", "fire-test", "--config", "sim-airjet-modbus.yaml", "--emulate", "--valves", "60-63", "--gap-ms", "40", "--yes"]
        )
        == 0
    )
    assert "4/4 valves fired" in capsys.readouterr().out
