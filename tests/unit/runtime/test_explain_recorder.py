"""What ``--explain`` collects per cycle: detections matched to true objects, tracks, decisions, commands, views."""

from __future__ import annotations

import numpy as np

from sorter.analytics.explain_strip import LABEL_W_PX, VIEW_PX, render_strip
from sorter.entities import Detections, FireCommand, Frame, Track, TruthObject
from sorter.runtime.explain_recorder import ExplainRecorder, match_boxes
from sorter.runtime.pipeline import CycleResult
from sorter.schedule.results import Decision
from sorter.sim.explain_history import Attribution


def test_boxes_match_greedily_by_overlap_one_detection_each() -> None:
    truth = np.array([[0, 0, 10, 10], [100, 100, 120, 120], [300, 300, 310, 310]], np.float64)
    dets = np.array([[101, 101, 121, 121], [1, 0, 11, 10], [0, 1, 10, 11], [305, 305, 330, 330]], np.float64)
    # object 0 takes the better of its two detections; object 2's only candidate overlaps too little
    assert match_boxes(truth, dets) == [1, 0, -1]
    assert match_boxes(truth, np.zeros((0, 4))) == [-1, -1, -1]


def _track(tid: int, confirmed: bool) -> Track:
    return Track(tid, 0, 0.9, (1.0,) * 6, -50.0, 300.0, 0.0, 0.0, 80.0, 60.0, 2.0, 2.0, 100.0, 0, 0, 3, confirmed)


def _cycle(frame_index: int, truth: tuple[TruthObject, ...], image: np.ndarray, confirmed: bool) -> CycleResult:
    dets = Detections(
        boxes_px=np.array([[100, 100, 200, 180], [400, 400, 420, 420], [600, 50, 700, 120]], np.float32),
        scores=np.array([0.9, 0.1, 0.8], np.float32),  # the second is under min_score: never a measurement
        class_ids=np.array([0, 3, 4], np.int32),
    )
    cmd = FireCommand(7, 11, 10, 12, 900.0, 960.0, 930.0, 0, 0)
    return CycleResult(
        frame=Frame(image=image, t_capture_ns=frame_index, s_capture_mm=frame_index * 40.0, frame_index=frame_index, truth=truth),
        detections=dets,
        active=(_track(11, confirmed), _track(12, False)),
        retired=(),
        commands=(cmd,) if confirmed else (),
        late_dropped=0,
        decisions=(Decision(11, "eject", "", 0, 0.9, 100.0, 0, 7, 930.0),) if confirmed else (),
        s_now_mm=100.0,
        speed_mm_s=2500.0,
        meas_track_ids=(11, 12),
    )


def test_a_cycle_records_sightings_tracks_decisions_and_views() -> None:
    rec = ExplainRecorder(min_score=0.3)
    pet = TruthObject(1, 0, (102.0, 98.0, 198.0, 182.0), 300.0, 50.0, 80.0, 60.0, 1.0)
    hidden = TruthObject(2, 3, (400.0, 400.0, 420.0, 420.0), 600.0, 90.0, 20.0, 20.0, 0.3)
    no_pixels = np.zeros((0, 0, 3), np.uint8)
    rec.on_cycle(_cycle(5, (pet, hidden), no_pixels, confirmed=False))
    rec.on_cycle(_cycle(6, (pet, hidden), np.full((720, 1280, 3), 128, np.uint8), confirmed=True))
    rec.on_cycle(_cycle(7, (), no_pixels, confirmed=True))  # both objects left the view
    s1 = rec.sightings[1]
    assert [(s.frame_index, s.track_id, s.det_class_id) for s in s1] == [(5, 11, 0), (6, 11, 0)]
    # the low-scoring detection over object 2 was no measurement: object 2 counts as undetected
    assert [(s.track_id, s.det_class_id, s.visible_fraction) for s in rec.sightings[2]] == [(0, -1, 0.3)] * 2
    assert rec.tracks[11].confirmed_frame == 6 and rec.tracks[12].confirmed_frame is None
    assert rec.decisions[11].action == "eject" and rec.decisions[11].frame_index == 6 and rec.decisions[11].command_id == 7
    assert rec.commands[7].track_id == 11 and rec.commands[7].s_mm == 900.0
    views = rec.views[1]
    assert [v.frame_index for v in views] == [5, 6]
    assert views[0].image is None and views[1].image is not None and views[1].image.shape[2] == 3
    assert max(views[1].size_px) == 96
    assert [d[3] for d in views[1].detections] == [11]  # only the detection near the object


def test_the_strip_has_a_row_per_case_with_its_views() -> None:
    rec = ExplainRecorder(min_score=0.3)
    pet = TruthObject(1, 0, (102.0, 98.0, 198.0, 182.0), 300.0, 50.0, 80.0, 60.0, 1.0)
    rec.on_cycle(_cycle(5, (pet,), np.full((720, 1280, 3), 128, np.uint8), confirmed=False))
    rec.on_cycle(_cycle(6, (), np.zeros((0, 0, 3), np.uint8), confirmed=False))
    cases = [
        Attribution(1, 0, "target_missed", "fire_position_off", "pulse 7 missed (error +40 mm on object 1)", 5, 5, 11, 7, 1.0),
        Attribution(9, 2, "target_missed", "never_detected", "never detected", 3, 4, 0, None, 0.8),
    ]
    img = render_strip(cases, rec.views)
    assert img.shape == (2 * VIEW_PX + 4, LABEL_W_PX + 4 * (VIEW_PX + 4), 3)
    first_view = img[:VIEW_PX, LABEL_W_PX + 4 : LABEL_W_PX + 4 + VIEW_PX]
    assert ((first_view[..., 1] == 220) & (first_view[..., 0] == 0)).any()  # the true box, in green
    assert not img[VIEW_PX + 4 :, LABEL_W_PX:].any()  # no views kept of object 9: its row has none
    assert render_strip([], {}).shape[0] > 0
