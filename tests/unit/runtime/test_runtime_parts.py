"""Odometer estimate, latest-frame slot, charged clock, oracle detector."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from sorter.capture.slot import LatestSlot
from sorter.clock import ChargedClock
from sorter.detect.oracle import OracleDetector
from sorter.entities import MATERIAL_CLASSES, Frame, TruthObject
from sorter.errors import SorterError
from sorter.runtime.odometry import OdometerEstimator


def test_odometer_speed_and_extrapolation() -> None:
    odo = OdometerEstimator(window_ns=50_000_000, nominal_speed_mm_s=1000.0)
    for k in range(10):
        t = k * 16_666_667
        odo.add(t, 2.5 * t / 1e6)  # 2500 mm/s
    assert odo.speed_mm_s == pytest.approx(2500.0, rel=1e-6)
    t_last = 9 * 16_666_667
    assert odo.s_at(t_last + 10_000_000) == pytest.approx(2.5 * t_last / 1e6 + 25.0)


def test_odometer_follows_a_speed_step_within_its_window() -> None:
    odo = OdometerEstimator(window_ns=50_000_000, nominal_speed_mm_s=2500.0)
    s = 0.0
    for k in range(1, 40):
        speed = 2500.0 if k < 20 else 1500.0
        s += speed * 0.01
        odo.add(k * 10_000_000, s)
    assert odo.speed_mm_s == pytest.approx(1500.0, rel=1e-6)


def test_latest_slot_keeps_newest_and_counts_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.take(0.01) == 4
    assert slot.dropped == 4
    assert slot.take(0.01) is None


def test_latest_slot_wakes_a_waiting_consumer() -> None:
    slot: LatestSlot[int] = LatestSlot()
    got: list[int | None] = []
    th = threading.Thread(target=lambda: got.append(slot.take(2.0)))
    th.start()
    time.sleep(0.05)
    slot.put(7)
    th.join(1.0)
    assert got == [7]


def test_charged_clock_charges_processing_time_only() -> None:
    c = ChargedClock()
    c.begin_cycle(1_000_000_000)
    time.sleep(0.01)
    t = c.end_cycle()
    assert 1_010_000_000 <= t < 1_500_000_000
    time.sleep(0.01)
    assert c.now_ns() == t  # frozen between cycles
    c.begin_cycle(500)  # never backwards
    assert c.end_cycle() >= t


def _truth(n: int) -> tuple[TruthObject, ...]:
    return tuple(
        TruthObject(i, i % 6, (100.0 + 50 * i, 100.0, 140.0 + 50 * i, 180.0), 100.0, 0.0, 80.0, 40.0, 1.0) for i in range(n)
    )


def _oracle(**kw: float) -> OracleDetector:
    args: dict[str, float] = dict(
        miss_rate=0.05, class_confusion=0.02, false_positives_per_frame=0.0, box_jitter_px=1.0, min_visible_fraction=0.5
    )
    args.update(kw)
    return OracleDetector(MATERIAL_CLASSES, seed=3, **args)  # type: ignore[arg-type]


def test_oracle_noise_rates_match_configuration() -> None:
    det = _oracle()
    truth = _truth(20)
    n_det = n_conf = 0
    for k in range(500):
        d = det.detect(Frame(np.zeros((0, 0, 3), np.uint8), k, 0.0, k, truth=truth))
        n_det += len(d)
        for b, c in zip(d.boxes_px, d.class_ids, strict=True):
            i = round((float(b[0]) - 100.0) / 50.0)
            n_conf += int(c != truth[i].class_id)
    assert n_det / (500 * 20) == pytest.approx(0.95, abs=0.01)
    assert n_conf / n_det == pytest.approx(0.02, abs=0.006)


def test_oracle_is_deterministic_per_frame_and_reports_false_positives() -> None:
    det = _oracle(false_positives_per_frame=2.0)
    f = Frame(np.zeros((0, 0, 3), np.uint8), 0, 0.0, 42, truth=_truth(3))
    a, b = det.detect(f), det.detect(f)
    assert np.array_equal(a.boxes_px, b.boxes_px)
    fps = [len(det.detect(Frame(f.image, 0, 0.0, k, truth=()))) for k in range(300)]
    assert np.mean(fps) == pytest.approx(2.0, abs=0.25)


def test_oracle_ignores_mostly_hidden_objects_and_needs_truth() -> None:
    det = _oracle(miss_rate=0.0)
    hidden = (TruthObject(0, 0, (0.0, 0.0, 10.0, 10.0), 0.0, 0.0, 10.0, 10.0, 0.2),)
    assert len(det.detect(Frame(np.zeros((0, 0, 3), np.uint8), 0, 0.0, 0, truth=hidden))) == 0
    with pytest.raises(SorterError, match="ground truth"):
        det.detect(Frame(np.zeros((0, 0, 3), np.uint8), 0, 0.0, 0, truth=None))
