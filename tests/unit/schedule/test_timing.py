"""Odometer timing of ejection: line crossings, air windows, pulse clamps, valves, lead."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sorter.entities import Track
from sorter.schedule.timing import ValveBank, air_window, decision_due, lead_mm, rel_speed, s_crossing


def track(u_mm: float = -1000.0, x_mm: float = 600.0, s_ref_mm: float = 1350.0, **kw: float) -> Track:
    fields: dict[str, float] = {
        "du_per_mm": 0.0,
        "dx_per_mm": 0.0,
        "length_mm": 100.0,
        "width_mm": 80.0,
        "sigma_u_mm": 2.0,
        "sigma_x_mm": 2.0,
    }
    fields.update(kw)
    return Track(
        track_id=1,
        class_id=0,
        class_confidence=0.9,
        class_votes=(9.0, 0, 0, 0, 0, 0),
        u_mm=u_mm,
        x_mm=x_mm,
        s_ref_mm=s_ref_mm,
        t_first_ns=0,
        t_last_ns=0,
        hits=10,
        confirmed=True,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("du", [0.0, 0.016, -0.016, 0.1])
def test_s_crossing_puts_the_predicted_centre_on_the_line(du: float) -> None:
    tr = track(du_per_mm=du)
    s = s_crossing(tr, 1200.0)
    y, _, _, _ = tr.predict(s)
    assert y == pytest.approx(1200.0, abs=1e-9)
    if du == 0.0:
        assert s == pytest.approx(1200.0 - tr.u_mm)
    # a forward slide reaches the line earlier than the belt alone would bring it
    assert (s < 1200.0 - tr.u_mm) == (du > 0)


def test_air_window_spans_object_margin_and_uncertainty() -> None:
    tr = track(length_mm=100.0, sigma_u_mm=2.0)
    win = air_window(tr, 1200.0, margin_mm=10.0, sigma_k=2.0, speed_mm_s=2500.0, min_pulse_ms=4.0, max_pulse_ms=80.0)
    assert win.s_target_mm == pytest.approx(2200.0)
    sigma_at_line = math.hypot(2.0, 0.01 * (2200.0 - 1350.0))  # Track.predict's growth with travel
    half = 50.0 + 10.0 + 2.0 * sigma_at_line
    assert win.s_open_mm == pytest.approx(2200.0 - half)
    assert win.s_close_mm == pytest.approx(2200.0 + half)
    assert win.clamped == ""


def test_air_window_of_a_sliding_object_is_its_passage_time() -> None:
    tr = track(du_per_mm=0.25, sigma_u_mm=0.0, length_mm=100.0)
    win = air_window(tr, 1200.0, margin_mm=0.0, sigma_k=0.0, speed_mm_s=2500.0, min_pulse_ms=0.001, max_pulse_ms=1e6)
    # moving 1.25 mm per mm of belt, its 100 mm pass the line in 80 mm of travel
    assert win.s_close_mm - win.s_open_mm == pytest.approx(100.0 / rel_speed(tr))
    assert win.s_close_mm - win.s_open_mm == pytest.approx(80.0)


@pytest.mark.parametrize("speed", [500.0, 2500.0, 4000.0])
def test_pulse_clamps_are_centred_on_the_target(speed: float) -> None:
    tiny = track(length_mm=0.5, sigma_u_mm=0.0)
    win = air_window(tiny, 1200.0, margin_mm=0.0, sigma_k=0.0, speed_mm_s=speed, min_pulse_ms=4.0, max_pulse_ms=80.0)
    assert win.clamped == "min"
    assert win.s_close_mm - win.s_open_mm == pytest.approx(4.0e-3 * speed)
    assert (win.s_open_mm + win.s_close_mm) / 2 == pytest.approx(win.s_target_mm)
    huge = track(length_mm=650.0)
    win = air_window(huge, 1200.0, margin_mm=10.0, sigma_k=2.0, speed_mm_s=speed, min_pulse_ms=4.0, max_pulse_ms=80.0)
    assert win.clamped == "max"
    assert win.s_close_mm - win.s_open_mm == pytest.approx(80.0e-3 * speed)
    assert (win.s_open_mm + win.s_close_mm) / 2 == pytest.approx(win.s_target_mm)


def test_standstill_has_no_time_scale_so_no_clamp() -> None:
    win = air_window(
        track(length_mm=2.0), 1200.0, margin_mm=0.0, sigma_k=0.0, speed_mm_s=0.0, min_pulse_ms=4.0, max_pulse_ms=80.0
    )
    assert win.clamped == "" and win.s_close_mm - win.s_open_mm == pytest.approx(2.0)


def test_lead_is_speed_times_latency() -> None:
    assert lead_mm(2500.0, 3.0) == pytest.approx(7.5)
    assert lead_mm(1000.0, 0.0) == 0.0
    assert lead_mm(-5.0, 3.0) == 0.0


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (-15.0, 35.0, (0, 1)),  # left edge of the belt, clipped to valve 0
        (1165.0, 1215.0, (62, 63)),  # right edge, clipped to the last valve
        (27.5, 47.5, (1, 2)),  # straddles the boundary between valves 1 and 2 at 37.5 mm
        (24.0, 32.0, (1, 1)),  # inside valve 1
        (18.75, 37.5, (1, 1)),  # exactly valve 1: touching a neighbour's edge takes no air from it
        (0.0, 1200.0, (0, 63)),
        (1200.0, 1300.0, None),  # beyond the bank
        (-100.0, 0.0, None),
    ],
)
def test_valves_covering(lo: float, hi: float, expected: tuple[int, int] | None) -> None:
    assert ValveBank(64, 18.75, 0.0).valves_covering(lo, hi) == expected


@settings(max_examples=300, deadline=None)
@given(
    lo=st.floats(-200.0, 1400.0),
    width=st.floats(0.5, 500.0),
    pitch=st.floats(5.0, 40.0),
    x_first=st.floats(-50.0, 100.0),
    count=st.integers(1, 80),
)
def test_valves_cover_the_span_and_no_more(lo: float, width: float, pitch: float, x_first: float, count: int) -> None:
    bank = ValveBank(count, pitch, x_first)
    hi = lo + width
    got = bank.valves_covering(lo, hi)
    bank_lo, bank_hi = x_first, x_first + count * pitch
    inside = min(hi, bank_hi) - max(lo, bank_lo)
    if got is None:
        assert inside <= 1e-6 * pitch
        return
    first, last = got
    assert 0 <= first <= last < count
    # the chosen valves' air covers the part of the span that lies over the bank
    assert x_first + first * pitch <= max(lo, bank_lo) + 1e-6
    assert x_first + (last + 1) * pitch >= min(hi, bank_hi) - 1e-6
    # and the outermost chosen valves really overlap the span (no wasted valve)
    assert x_first + (first + 1) * pitch > lo - 1e-6
    assert x_first + last * pitch < hi + 1e-6


def test_decision_due() -> None:
    tr = track(u_mm=-1000.0, s_ref_mm=1300.0)  # y = 300 at s = 1300
    assert not decision_due(tr, False, 1300.0, view_end_y_mm=360.0, line_y_mm=1200.0, decide_before_mm=150.0)
    assert decision_due(tr, True, 1300.0, view_end_y_mm=360.0, line_y_mm=1200.0, decide_before_mm=150.0)
    assert decision_due(tr, False, 1361.0, view_end_y_mm=360.0, line_y_mm=1200.0, decide_before_mm=150.0)
    # with a long view the line comes first
    assert not decision_due(tr, False, 2040.0, view_end_y_mm=5000.0, line_y_mm=1200.0, decide_before_mm=150.0)
    assert decision_due(tr, False, 2051.0, view_end_y_mm=5000.0, line_y_mm=1200.0, decide_before_mm=150.0)
