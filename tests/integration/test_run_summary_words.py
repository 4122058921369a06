"""``sorter run`` summaries in the line's own words: a robot picks; a run that removed nothing has no purity."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sorter.cli import main as cli_main


def test_a_robot_run_says_picked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "robot.json"
    assert cli_main(["run", "--config", "configs/sim-robot.yaml", "--fast", "--duration", "5", "--quiet", "--set",
                     "runtime.overload_degrades=false",
                     "--summary", str(out)]) == 0
    text = capsys.readouterr().out
    s = json.loads(out.read_text())
    assert s["targets_ejected"] >= 1  # the summary keeps one key for both kinds of line; the text says picked
    assert f"picked {s['targets_ejected']}  non-targets picked {s['nontargets_ejected']}" in text
    assert not re.search(r"\bejected\b", text)
    assert "faults            none" in text and s["faults"] == {}


def test_a_run_that_ejected_nothing_prints_no_purity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "air.json"
    # targets that never come by (this belt carries no film): nothing is ejected
    args = ["run", "--fast", "--duration", "3", "--quiet", "--summary", str(out), "--set", "policy.targets=[film]",
            "--set", "sim.class_mix={pet_bottle: 1.0}"]
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    s = json.loads(out.read_text())
    assert s["targets_ejected"] == 0 and s["nontargets_ejected"] == 0 and s["objects_seen"] > 0
    assert "purity n/a (nothing ejected)" in text and "purity 1.0000" not in text
    assert "recovery          n/a (no target went by)" in text
