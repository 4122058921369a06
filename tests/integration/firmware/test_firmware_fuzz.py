"""Fuzzed frames through the emulated board's UART: random bytes, valid-CRC garbage, truncated, oversize, unknown
types, wrong lengths and refused commands, mixed with good FIREs and heartbeats. The firmware must not reset,
must not fire anything it was not told to, must count every bad frame, and must keep firing the good commands on
their counts. ``scripts/fuzz_firmware.py`` runs 100,000 frames."""

from __future__ import annotations

from pathlib import Path

import fwfixtures
import fwscenarios as sc
from fwboard import Build

fw = fwfixtures.fw
identity = fwfixtures.identity
workdir = fwfixtures.workdir


def test_fuzzed_frames_cause_no_reset_and_no_wrong_pulse(fw: Build, identity: tuple[int, int], workdir: Path) -> None:
    boot_id, epoch = identity
    plan, r = sc.run_fuzz(fw, workdir, epoch, items=1500, seed=11)
    assert not r.crashed
    assert r.resets == 0
    assert r.boot_id == boot_id  # still the same boot at the end, and it answered
    assert r.bad_frames == plan.expected["bad"] > 500  # every damaged, unknown or wrong-length frame counted
    assert r.fires.accepted == r.fires.fired == len(plan.fires) > 20
    assert r.fires.open_errors == {0: len(plan.fires)} and r.fires.close_errors == {0: len(plan.fires)}
    assert r.fires.unexplained_edges == 0  # no pulse but the good ones
    assert r.tx_frames["NAK"] > 0 and not [k for k in r.tx_frames if k.startswith("bad:")]
