"""The guide asks in interactive mode only, and a person can stop a procedure before valves fire."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sorter.calib.guide import Guide
from sorter.calib.procedures import Outputs, run_timing
from sorter.calib.timing import TimingThresholds, ValveGeometry
from sorter.calib.timing_rig import SimHitObserver, SimPulseRig, ValveTruth
from sorter.errors import CalibrationError
from sorter.sim.marker_sheet import BeltMotion


def test_non_interactive_never_asks() -> None:
    def refuse(_prompt: str) -> str:
        raise AssertionError("asked a question in non-interactive mode")

    g = Guide(interactive=False, out=io.StringIO(), ask=refuse)
    assert g.wait("go?") is True
    assert g.ask("distance", "12") == "12"


def test_interactive_answers_and_defaults() -> None:
    answers = iter(["", "250", "q"])
    g = Guide(interactive=True, out=io.StringIO(), ask=lambda _p: next(answers))
    assert g.wait("go?") is True
    assert g.ask("distance", "12") == "250"
    assert g.wait("again?") is False


def test_a_person_can_stop_before_firing(tmp_path: Path) -> None:
    geom = ValveGeometry(8, 20.0)
    fired: list[int] = []

    class CountingRig(SimPulseRig):
        def fire(self, valve: int):  # type: ignore[no-untyped-def]
            fired.append(valve)
            return super().fire(valve)

    rig = CountingRig(BeltMotion(2000.0, 10.0), 10.0, SimHitObserver(ValveTruth(), geom))
    out = io.StringIO()
    guide = Guide(interactive=True, out=out, ask=lambda _p: "q")
    outputs = Outputs(tmp_path / "v.yaml", None, None, datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(CalibrationError, match="stopped before firing"):
        run_timing(rig, geom, list(range(8)), 3, TimingThresholds(), guide, outputs)
    assert fired == [] and not list(tmp_path.iterdir())
    assert "Step 1/3" in out.getvalue()
