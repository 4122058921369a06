"""Deterministic simulated time: `sorter run --fast` charges modelled stage times, so load changes nothing but the wall clock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sorter.cli import main as cli_main
from sorter.runtime.accounting import WALL_CLOCK_KEYS

ORACLE = ("--set", "detector.type=oracle")
HOG = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 120:\n    pass\n"


def _run(tmp_path: Path, name: str, *args: str) -> dict[str, Any]:
    out = tmp_path / f"{name}.json"
    assert cli_main(["run", "--fast", "--quiet", "--summary", str(out), *args]) == 0
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _sorting(s: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if k not in WALL_CLOCK_KEYS}


@pytest.mark.timeout(1800)  # a hang guard: the run beside the hogs takes what wall time the machine gives it
def test_the_same_run_beside_two_cpu_hogs_gives_the_same_summary(tmp_path: Path) -> None:
    # the shipped model through ONNX Runtime: its real latency on this machine is whatever the load makes it
    quiet = _run(tmp_path, "quiet", "--duration", "4")
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]
    try:
        loaded = _run(tmp_path, "loaded", "--duration", "4")
    finally:
        for h in hogs:
            h.kill()
            h.wait(timeout=10)
    assert quiet["charge"] == "profile" and quiet["latency_profile"]["name"] == "cpu-2core"
    assert quiet["detector"].startswith("onnxruntime")
    assert quiet["frames"] > 0 and quiet["objects_seen"] > 0
    assert _sorting(loaded) == _sorting(quiet)
    assert "latency_measured_ms" in loaded and "detect" in loaded["latency_measured_ms"]


def test_a_profile_too_slow_for_the_camera_rate_is_reported_overloaded(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", "--duration", "6", *ORACLE, "--set", "runtime.latency_override_ms={detect: 45}")
    b = _run(tmp_path, "b", "--duration", "6", *ORACLE, "--set", "runtime.latency_override_ms={detect: 45}")
    assert _sorting(a) == _sorting(b)
    over = a["overload"]
    assert over["overloaded"] is True and over["episodes"] >= 1 and over["overloaded_s"] > 3.0
    assert over["worst"].startswith("overloaded (detect ") and "> 16.7 ms budget" in over["worst"]
    assert a["frames_dropped_fraction"] > 0.5
    assert a["latency_ms"]["detect"]["p50"] > 40.0  # the booked (modelled) time, not the oracle's real microseconds


def test_a_line_within_its_budget_is_not_overloaded_and_wall_charge_still_runs(tmp_path: Path) -> None:
    s = _run(tmp_path, "ok", "--duration", "4", *ORACLE, "--set", "runtime.latency_profile=edge-gpu")
    assert s["latency_profile"] == {"name": "edge-gpu", "source": "modelled"}
    assert s["overload"]["overloaded"] is False and s["frames_dropped"] == 0
    w = _run(tmp_path, "wall", "--duration", "2", *ORACLE, "--charge", "wall")
    assert w["charge"] == "wall" and "latency_profile" not in w and "latency_measured_ms" not in w
    assert w["frames"] > 0


def test_a_missing_profile_stops_start_up_with_the_fix(tmp_path: Path, capsys: Any) -> None:
    assert cli_main(["run", "--fast", "--duration", "1", "--quiet", *ORACLE, "--set", "runtime.latency_profile=nope"]) == 2
    err = capsys.readouterr().err
    assert "runtime.latency_profile" in err and "nope" in err and "--write-profile" in err


def test_only_the_frames_the_loop_takes_are_drawn() -> None:
    import threading

    from sorter.runtime.line import build_line
    from sorter.runtime.loops import run_line
    from sorter.runtime.preflight import load_line_config

    cfg = load_line_config(None, ["detector.type=oracle", "runtime.latency_override_ms={detect: 45}"])
    line = build_line(cfg, fast=True)
    plant: Any = line.plant
    exposed: list[int] = []
    drawn: list[int] = []
    expose, develop = plant.expose, plant.develop

    def counting_expose(t_ns: int, k: int) -> Any:
        exposed.append(k)
        return expose(t_ns, k)

    def counting_develop(e: Any) -> Any:
        drawn.append(e.frame.frame_index)
        return develop(e)

    plant.expose, plant.develop = counting_expose, counting_develop
    s = run_line(line, 3.0, True, threading.Event())
    assert len(drawn) == s["frames"] and len(exposed) == s["frames"] + s["frames_dropped"]
    assert exposed == list(range(len(exposed)))  # every camera frame exposed once, in order
    assert s["frames_dropped"] > s["frames"]  # a 45 ms detector at 60 fps lets most frames go by undrawn


def test_an_overloaded_loop_degrades_the_service_with_the_numbers() -> None:
    import threading

    from sorter.runtime.line import build_line
    from sorter.runtime.loops import run_line
    from sorter.runtime.preflight import load_line_config
    from sorter.runtime.service import LineService

    cfg = load_line_config(None, ["detector.type=oracle", "runtime.latency_override_ms={detect: 45}"])
    line = build_line(cfg, fast=True)
    service = LineService(line)
    line.service = service
    reasons: list[str] = []
    service.on_change = lambda: reasons.append(service.reason())
    run_line(line, 4.0, True, threading.Event())
    assert service.faults.get("overloaded") == 1
    assert any(r.startswith("overloaded: detect ") and "ms p50 > 16.7 ms budget" in r for r in reasons), reasons
    m = service.metrics()
    assert m.overload["overloaded"] == 1 and float(m.overload["drop_share"]) > 0.5
