"""The firmware's portable C core, unit-tested on the host (``make -C firmware test``): the golden frames of
PROTOCOL.md section 2.3, the link's error handling, and the controller's behaviour on a model of the compare unit
(see firmware/tests/test_core.c)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[3] / "firmware"


def test_core_unit_tests_pass(tmp_path: Path) -> None:
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("make and a C compiler are needed to build the firmware's host tests")
    run = subprocess.run(["make", "-s", "-C", str(FIRMWARE), f"BUILD={tmp_path}", "test"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    m = re.search(r"(\d+) checks, (\d+) failed", run.stdout)
    assert m is not None, run.stdout
    assert int(m.group(1)) > 100_000 and int(m.group(2)) == 0
