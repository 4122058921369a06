"""Valve timing through real controller links: serial emulator on socat pseudo-terminals, PLC emulator over Modbus TCP."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import yaml

from sorter.commands import calibrate


def run(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    calibrate.add_arguments(p)
    return calibrate.main(p.parse_args(argv))


@pytest.mark.parametrize(
    "link",
    [
        pytest.param("serial", marks=pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")),
        "modbus",
    ],
)
def test_latency_through_the_emulated_controller(link: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    true_latency_ms = 4.2
    out = tmp_path / "valves.yaml"
    argv = ["timing", "--link", link, "--emulator", "--non-interactive", "--valves", "0-5", "--repeats", "5"]
    argv += ["--set", f"sim.valve_latency_ms={true_latency_ms}", "--set", "sim.valve_jitter_ms=0.2", "--out", str(out)]
    assert run(argv) == 0, capsys.readouterr()
    doc = yaml.safe_load(out.read_text())
    assert abs(doc["mean_latency_ms"] - true_latency_ms) < 0.5
    assert all(abs(v["latency_ms"] - true_latency_ms) < 0.5 for v in doc["valves"])
    # every pulse came back with a FIRED position from the controller
    assert len(doc["observations"]) == 30
    assert all(o["s_fired_mm"] >= o["s_command_mm"] - 0.1 for o in doc["observations"])
    assert (tmp_path / "valves-preview" / "latency.png").is_file()
    # marked as made against an emulator: a real line refuses it, the simulated one uses it
    assert doc["provenance"] == "emulator"
    assert "comes from the emulator and is marked so" in capsys.readouterr().out


def test_real_line_without_hit_observation_stops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run(["timing", "--link", "serial", "--non-interactive", "--out", str(tmp_path / "v.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and "--emulator" in err and "nothing was written" in err
    assert not list(tmp_path.iterdir())
