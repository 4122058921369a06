"""How a replay judges a recording's gaps: counts from the recorder, else the frame indices, else the capture times."""

from __future__ import annotations

from sorter.capture.recording_gaps import Stamp, assess_gaps

PERIOD_NS = 16_666_667  # 60 fps
SPEED_MM_S = 2500.0


def _stamps(indices: list[int]) -> list[Stamp]:
    return [Stamp(i, i * PERIOD_NS, i * PERIOD_NS / 1e9 * SPEED_MM_S) for i in indices]


def test_a_complete_recording_passes_without_a_word() -> None:
    r = assess_gaps(_stamps(list(range(300))), 60.0, {"frames_captured": 300, "complete": True}, view_length_mm=700.0)
    assert (r.frames_missing, r.refuse, r.warn) == (0, (), ())
    assert abs(r.longest_gap_ms - 16.667) < 0.01 and abs(r.speed_mm_s - SPEED_MM_S) < 1e-6
    assert abs(r.view_time_ms - 280.0) < 0.1


def test_a_few_missing_frames_warn_and_many_refuse() -> None:
    few = [i for i in range(300) if i % 50 != 7]  # 6 of 300 missing, single-frame gaps
    r = assess_gaps(_stamps(few), 60.0, {}, view_length_mm=700.0)
    assert r.frames_captured == 300 and r.frames_missing == 6 and not r.refuse
    assert any("6 of 300 captured frames are missing (2.0 %)" in w for w in r.warn)
    many = [i for i in range(300) if i % 3 == 0]  # two in three missing (indices 0..297), gaps of 50 ms
    r = assess_gaps(_stamps(many), 60.0, {}, view_length_mm=700.0)
    assert r.refuse and "more than the 10 % allowed" in r.refuse[0] and r.frames_missing == 198
    assert not assess_gaps(_stamps(many), 60.0, {}, view_length_mm=700.0, max_missing_share=0.7).refuse


def test_a_gap_an_object_could_cross_the_view_in_refuses_whatever_the_share() -> None:
    frames = list(range(200)) + list(range(220, 2000))  # 20 frames (333 ms) missing at 2.5 m/s: a 280 ms view crossed
    r = assess_gaps(_stamps(frames), 60.0, {}, view_length_mm=700.0)
    assert r.missing_share < 0.02
    assert len(r.refuse) == 1 and "longer than an object's time in view (280 ms" in r.refuse[0]
    # the same gap on a long view only warns
    r = assess_gaps(_stamps(frames), 60.0, {}, view_length_mm=3000.0)
    assert not r.refuse and any("longest gap between frames is 350 ms" in w for w in r.warn)


def test_the_stamps_overrule_a_meta_that_says_nothing_was_dropped() -> None:
    """Older recorders wrote frames_dropped: 0 whatever the loop dropped."""
    kept = [i for i in range(525) if i % 5]  # 105 of 525 missing
    r = assess_gaps(_stamps(kept), 60.0, {"frames": len(kept), "frames_dropped": 0}, view_length_mm=700.0)
    assert (r.frames_captured, r.frames_missing) == (524, 104)  # the span of indices 1..524
    # without usable indices the capture times tell the span
    no_index = [Stamp(0, s.t_capture_ns, s.s_capture_mm) for s in _stamps(kept)]
    r = assess_gaps(no_index, 60.0, {}, view_length_mm=700.0)
    assert r.frames_captured == 524 and r.refuse


def test_an_empty_recording_or_one_the_recorder_marked_incomplete() -> None:
    assert assess_gaps([], 60.0, {}, view_length_mm=700.0).refuse == ("it holds no frame",)
    r = assess_gaps(_stamps(list(range(100))), 60.0, {"complete": False}, view_length_mm=700.0)
    assert r.warn == ("the recorder marked it incomplete",)
