"""``sorter hw`` against the serial valve-controller emulator (``--emulate``: a real pty pair, the real protocol)."""

from __future__ import annotations

import pytest

from sorter.cli import main


def test_hw_ping_and_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hw", "ping", "--config", "sim-airjet-serial.yaml", "--emulate", "--count", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("round trip") >= 3 and "belt:" in out and "mm/s" in out
    assert main(["hw", "status", "--config", "sim-airjet-serial.yaml", "--emulate"]) == 0
    out = capsys.readouterr().out
    assert "protocol v2" in out and "valves:   64" in out and "fault NONE" in out and "epoch 1, boot" in out


def test_hw_fire_test_fires_each_valve_in_turn(capsys: pytest.CaptureFixture[str]) -> None:
    # The outcome asserted is the wiring check's, whatever the machine's load: an ACK may take 0.5 s (on a busy
    # 2-core machine the emulator can be held past the 20 ms default, and 4 transmissions without an answer end
    # "rejected"), and the first valve fires 3 s after sending, so retransmissions are never late.
    args = ["hw", "fire-test", "--config", "sim-airjet-serial.yaml", "--emulate", "--valves", "0-3,10", "--gap-ms", "40"]
    args += ["--lead-ms", "3000", "--set", "actuator.serial.ack_timeout_ms=500", "--yes"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "5/5 valves fired" in out
    for v in (0, 1, 2, 3, 10):
        assert f"valve {v:3d}: fired at count" in out


def test_hw_fire_test_dry_run_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hw", "fire-test", "--config", "sim-airjet-serial.yaml", "--emulate", "--valves", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would fire valve   2" in out and "nothing was sent" in out


def test_hw_fire_test_needs_confirmation(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["hw", "fire-test", "--config", "sim-airjet-serial.yaml", "--emulate"]) == 2
    assert "--yes" in capsys.readouterr().err


def test_hw_refuses_a_non_controller_actuator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hw", "status", "--config", "sim-airjet.yaml"]) == 2
    assert "actuator.type" in capsys.readouterr().err
