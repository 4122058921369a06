"""Sorter commands <-> wire commands: millimetres of odometer to encoder counts and back."""

from __future__ import annotations

import pytest

from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import Fire, Pick
from sorter.actuate.bridge import to_report, to_wire
from sorter.entities import FireCommand, PickCommand


def fire(cid: int = 5, s_open: float = 1234.56, s_close: float = 1260.04) -> FireCommand:
    return FireCommand(
        cid,
        track_id=1,
        valve_first=3,
        valve_last=6,
        s_open_mm=s_open,
        s_close_mm=s_close,
        s_target_mm=1247.0,
        class_id=0,
        t_issue_ns=0,
    )


def test_fire_positions_round_to_the_nearest_count() -> None:
    assert to_wire(fire(), 10.0) == Fire(5, 3, 6, 12346, 12600)
    assert to_wire(fire(), 4.0) == Fire(5, 3, 6, 4938, 5040)


def test_pulse_never_collapses_to_zero_counts() -> None:
    w = to_wire(fire(s_open=100.0, s_close=100.01), 10.0)
    assert isinstance(w, Fire) and w.close_count == w.open_count + 1


def test_pick_carries_the_world_pick_point() -> None:
    p = PickCommand(9, track_id=2, x_mm=350.25, u_mm=-800.0, s_pick_mm=2000.0, class_id=1, value=1.0, t_issue_ns=0)
    assert to_wire(p, 10.0) == Pick(9, 350250, 1_200_000, 20000)


@pytest.mark.parametrize("bad", [fire(cid=-1), fire(cid=2**32), fire(s_open=1e30, s_close=2e30)])
def test_values_that_do_not_fit_the_wire_are_refused(bad: FireCommand) -> None:
    with pytest.raises(ValueError):
        to_wire(bad, 10.0)


def test_reports_convert_counts_back_to_millimetres() -> None:
    r = to_report(LinkEvent(5, "executed", 12346, 12600), 10.0)
    assert r.status == "executed" and r.s_actual_mm == pytest.approx(1234.6)
    r = to_report(LinkEvent(6, "late", detail="controller NAK LATE"), 10.0)
    assert r.status == "late" and r.s_actual_mm is None and "LATE" in r.detail
