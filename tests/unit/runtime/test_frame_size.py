"""The live loop's check of frame size against the calibrated image size."""

from __future__ import annotations

from sorter.runtime.loops import frame_size_problem


def test_frames_of_the_calibrated_size_are_fine() -> None:
    assert frame_size_problem((1280, 720), (1280, 720)) is None


def test_frames_of_another_size_name_both_sizes_and_the_fix() -> None:
    problem = frame_size_problem((1280, 720), (368, 656))
    assert problem is not None
    assert "368x656" in problem and "1280x720" in problem and "calibrate it again" in problem
