"""The console's pure parts: shots and their outcomes, belt-map positions, rates, estimates, bounded status, tokens."""

from __future__ import annotations

from sorter.entities import CommandReport, FireCommand, PickCommand
from sorter.runtime.web.auth import VIEW_COOKIE, control_allowed, view_allowed, view_cookie_value
from sorter.runtime.web.bounded import bounded_score
from sorter.runtime.web.console_model import REAL_METHOD, SIM_METHOD, RateWindow, belt_shots, estimates, valves_open
from sorter.runtime.web.faults import FaultLog
from sorter.runtime.web.listen import is_loopback
from sorter.runtime.web.shots import ShotBook

GEO = {"y_eject_mm": 800.0, "valves": {"count": 64, "pitch_mm": 18.75, "x_first_mm": 0.0}}


def _fire(cid: int, s_open: float, s_close: float, first: int = 10, last: int = 12) -> FireCommand:
    return FireCommand(cid, 100 + cid, first, last, s_open, s_close, (s_open + s_close) / 2, 0, 0)


def test_shots_take_their_outcome_and_count_valves() -> None:
    book = ShotBook(capacity=3, keep_past_mm=100.0)
    book.add([_fire(1, 1000, 1040), _fire(2, 1100, 1150, 20, 20)], held=False)
    book.on_reports([CommandReport(1, "accepted"), CommandReport(1, "executed", 1001.0), CommandReport(2, "accepted")])
    book.on_reports([CommandReport(2, "late")])
    by_id = {s.command_id: s for s in book.visible(1000.0)}
    assert by_id[1].outcome == "executed" and by_id[2].outcome == "late"
    fires, outcomes = book.counts(64)
    assert fires[10:13] == [1, 1, 1] and fires[20] == 0 and sum(fires) == 3
    assert outcomes == {"executed": 1, "late": 1}
    book.on_reports([CommandReport(1, "accepted")])  # a late "accepted" never hides the final outcome
    assert {s.command_id: s for s in book.visible(1000.0)}[1].outcome == "executed"
    book.add([_fire(3, 2000, 2010), _fire(4, 2100, 2110)], held=True)  # capacity 3: the oldest goes
    assert [s.command_id for s in book.visible(1000.0)] == [2, 3, 4]
    assert book.visible(1000.0)[-1].outcome == "held"
    assert [s.command_id for s in book.visible(2160.0)] == [4]  # 100 mm past their end: forgotten


def test_a_valve_window_sits_where_the_belt_will_meet_the_line() -> None:
    book = ShotBook()
    book.add([_fire(1, 1200.0, 1260.0, 4, 7)], held=False)
    (shot,) = belt_shots(book.visible(1000.0), 1000.0, GEO)
    # the belt point now at 800 - (1200 - 1000) = 600 mm reaches the line when the valves open; closing: 540 mm
    assert (shot["y0"], shot["y1"]) == (540.0, 600.0) and shot["due_mm"] == 200.0
    assert (shot["x0"], shot["x1"]) == (75.0, 150.0)  # valves 4..7 at 18.75 mm pitch
    assert valves_open(book.visible(1230.0), 1230.0, 64) == [4, 5, 6, 7]
    assert valves_open(book.visible(1300.0), 1300.0, 64) == []
    pick = PickCommand(9, 5, 300.0, -400.0, 1500.0, 2, 1.0, 0)
    book.add([pick], held=False)
    (p,) = [s for s in belt_shots(book.visible(1000.0), 1000.0, GEO) if s["kind"] == "pick"]
    assert (p["x"], p["y"]) == (300.0, 1100.0)  # where the gripper closes: u + s_pick


def test_rates_are_over_the_span_actually_covered() -> None:
    w = RateWindow(60.0)
    assert w.per_minute() == ({}, 0.0)
    w.add(0.0, {"pet_bottle": 0})
    w.add(30.0, {"pet_bottle": 10})
    assert w.per_minute() == ({"pet_bottle": 20.0}, 30.0)  # 10 in 30 s: 20 per minute, not 10 per minute
    for t in range(31, 200):
        w.add(float(t), {"pet_bottle": 10 + (t - 30)})
    rates, span = w.per_minute()
    assert 59.0 <= span <= 61.0 and rates["pet_bottle"] == 60.0


def test_estimates_say_how_they_were_made() -> None:
    sim = estimates({"recovery": 0.9, "purity": 0.95, "targets_passed": 10, "pulses": 9}, {}, 9, 0.0, 0)
    assert sim["recovery"] == 0.9 and sim["method"] == SIM_METHOD and sim["source"] == "ground truth"
    real = estimates({}, {"eject": 8, "skip": 1, "late": 1, "not_target": 30}, 7, 7.2, 8)
    assert real["recovery"] == 0.7 and real["purity"] == 0.9 and real["method"] == REAL_METHOD
    assert estimates({}, {}, 0, 0.0, 0)["recovery"] is None  # nothing decided: no figure rather than a made-up one


def test_status_lists_stay_bounded() -> None:
    score = {"fire_position_errors_mm": [float(i) for i in range(100_000)], "recovery": 0.9, "pick_errors_mm": []}
    b = bounded_score(score, recent=20)
    assert "fire_position_errors_mm" not in b and b["fire_position_errors_mm_n"] == 100_000
    assert b["fire_position_errors_mm_recent"] == [float(i) for i in range(99_980, 100_000)] and b["recovery"] == 0.9
    log = FaultLog(capacity=5, wall_s=lambda: 1000.0)
    for i in range(50):
        log.add("camera", f"no frame {i}" if i % 2 == 0 else None)
    recent = log.recent()
    assert len(recent) == 5 and recent[0]["state"] == "recovered" and recent[1]["reason"] == "no frame 48"


def test_tokens() -> None:
    assert control_allowed(None, "Bearer x")[:2] == (False, 403)
    assert control_allowed("s3cret", None)[:2] == (False, 401)
    assert control_allowed("s3cret", "Bearer nope")[:2] == (False, 401)
    assert control_allowed("s3cret", "Bearer s3cret")[0]
    assert view_allowed(None, False, None, {}, {})  # not required: open
    assert not view_allowed(None, True, "Bearer x", {}, {})  # required without a token: never open
    assert view_allowed("s3cret", True, None, {"token": "s3cret"}, {})
    assert not view_allowed("s3cret", True, None, {}, {VIEW_COOKIE: "s3cret"})  # the cookie holds a digest, not the token
    assert view_allowed("s3cret", True, None, {}, {VIEW_COOKIE: view_cookie_value("s3cret")})
    assert not view_allowed("other", True, None, {}, {VIEW_COOKIE: view_cookie_value("s3cret")})
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("plc.local")
