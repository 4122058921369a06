"""The overload monitor: dropped share and stage medians against the frame budget, with hysteresis."""

from __future__ import annotations

from sorter.runtime.overload import OverloadMonitor

FAST = {"detect": 9.0, "track": 0.5}
SLOW = {"detect": 45.0, "track": 0.5}


def test_a_slow_stage_overloads_and_names_itself() -> None:
    mon = OverloadMonitor(fps=60.0, window_s=1.0, drop_share_limit=0.1)
    dropped, changes = 0, []
    for _ in range(200):
        dropped += 2  # a 45 ms stage at 60 fps: two frames of three go by
        if mon.on_frame(dropped, SLOW):
            changes.append(mon.overloaded)
    assert changes == [True] and mon.overloaded
    assert mon.reason() == "overloaded (detect 45.0 ms p50 > 16.7 ms budget, 67 % of frames dropped)"
    assert mon.cause() == "detect 45.0 ms p50 > 16.7 ms budget, 67 % of frames dropped"
    s = mon.summary()
    assert s["overloaded"] is True and s["episodes"] == 1 and 0 < float(s["overloaded_s"]) < 10.0  # type: ignore[arg-type]


def test_a_line_that_keeps_up_is_not_overloaded() -> None:
    mon = OverloadMonitor(fps=60.0, window_s=1.0, drop_share_limit=0.1)
    dropped = 0
    for k in range(600):
        dropped += 1 if k % 20 == 0 else 0  # 5 % dropped, stages within budget
        assert not mon.on_frame(dropped, FAST)
    assert mon.reason() is None and mon.summary()["overloaded"] is False


def test_drops_alone_overload_and_recovery_needs_half_the_limit() -> None:
    mon = OverloadMonitor(fps=60.0, window_s=1.0, drop_share_limit=0.1)
    dropped = 0
    for _ in range(120):
        dropped += 1  # half the frames dropped, stages fine (the machine stalls elsewhere)
        mon.on_frame(dropped, FAST)
    assert mon.overloaded
    assert "within the 16.7 ms budget" in (mon.reason() or "")
    for k in range(300):  # 8 % dropped: under the limit, not under half of it: still overloaded
        dropped += 1 if k % 12 == 0 else 0
        mon.on_frame(dropped, FAST)
    assert mon.overloaded
    for _ in range(300):
        mon.on_frame(dropped, FAST)
    assert not mon.overloaded and mon.episodes == 1


def test_metrics_export_the_overload_state() -> None:
    from sorter.runtime.metrics_text import MetricsSnapshot, prometheus_text

    mon = OverloadMonitor(fps=60.0, window_s=1.0, drop_share_limit=0.1)
    assert MetricsSnapshot.overload_of(None) == {}
    dropped = 0
    for _ in range(200):
        dropped += 2
        mon.on_frame(dropped, SLOW)
    snap = MetricsSnapshot(state="degraded", uptime_s=1.0, frames=200, frames_dropped=dropped, fps=20.0,
                           overload=MetricsSnapshot.overload_of(mon))
    text = prometheus_text(snap)
    assert "sorter_overloaded 1.0" in text
    assert "sorter_frames_dropped_share 0.6667" in text
    assert "sorter_frame_budget_ms 16.667" in text
    assert 'sorter_stage_window_p50_ms{stage="detect"} 45.0' in text
    assert 'sorter_state{state="degraded"} 1.0' in text
