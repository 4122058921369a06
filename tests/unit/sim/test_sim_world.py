"""The virtual line: determinism, ground truth vs projection, rendering, occlusion, threads."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from sorter.entities import MATERIAL_CLASSES, Frame
from sorter.geometry import CameraModel
from sorter.sim.config import SimConfig
from sorter.sim.render import RenderStyle
from sorter.sim.world import SimWorld

FRAME_NS = 16_666_667
CAM = CameraModel.looking_down(640, 360, 60.0, 1100.0, 600.0, dist=(-0.04, 0.01, 0.0, 0.0, 0.0))


def _world(cam: CameraModel = CAM, style: RenderStyle | None = None, **sim: object) -> SimWorld:
    cfg = SimConfig.model_validate(sim)
    return SimWorld(
        cfg,
        belt_width_mm=1200.0,
        nominal_speed_mm_s=2500.0,
        encoder_counts_per_mm=10.0,
        camera=cam,
        class_names=MATERIAL_CLASSES,
        style=style,
    )


def _truth_key(f: Frame) -> list[tuple[int, int, tuple[float, ...], float]]:
    assert f.truth is not None
    return [(t.object_id, t.class_id, tuple(round(v, 6) for v in t.box_px), round(t.y_w_mm, 6)) for t in f.truth]


def test_same_seed_same_frames_whatever_the_step_pattern() -> None:
    a = _world(seed=4, density_per_m2=8.0)
    b = _world(seed=4, density_per_m2=8.0)
    frames_a, frames_b = [], []
    for i in range(0, 90, 3):
        # b is advanced in many small irregular steps between captures, a only by captures
        for k in range(1, 3):
            b.advance_to(i * FRAME_NS - k * 3_000_000)
        frames_a.append(a.capture(i * FRAME_NS, i, render=False))
        frames_b.append(b.capture(i * FRAME_NS, i, render=False))
    assert sum(len(_truth_key(f)) for f in frames_a) > 30
    assert [_truth_key(f) for f in frames_a] == [_truth_key(f) for f in frames_b]
    img_a = a.capture(100 * FRAME_NS, 100, render=True).image
    img_b = b.capture(100 * FRAME_NS, 100, render=True).image
    assert np.array_equal(img_a, img_b)


def test_different_seed_differs() -> None:
    a = _world(seed=1, density_per_m2=8.0)
    b = _world(seed=2, density_per_m2=8.0)
    ka = [_truth_key(a.capture(i * FRAME_NS, i, render=False)) for i in range(0, 60, 6)]
    kb = [_truth_key(b.capture(i * FRAME_NS, i, render=False)) for i in range(0, 60, 6)]
    assert ka != kb


def test_truth_boxes_contain_the_projected_centres_and_match_world_state() -> None:
    w = _world(seed=6, density_per_m2=10.0)
    n = 0
    for i in range(0, 120, 4):
        t = i * FRAME_NS
        f = w.capture(t, i, render=False)
        assert f.truth is not None
        states = {s.object_id: s for s in w.object_states(t)}
        for tr in f.truth:
            s = states[tr.object_id]
            assert (tr.x_mm, tr.y_w_mm) == pytest.approx((s.x_mm, s.y_w_mm))
            px = CAM.belt_to_pixel(np.array([[tr.x_mm, tr.y_w_mm]]))[0]
            x1, y1, x2, y2 = tr.box_px
            assert 0.0 <= x1 <= x2 <= CAM.width_px - 1 and 0.0 <= y1 <= y2 <= CAM.height_px - 1
            if 0 <= px[0] <= CAM.width_px - 1 and 0 <= px[1] <= CAM.height_px - 1:
                assert x1 - 1e-6 <= px[0] <= x2 + 1e-6 and y1 - 1e-6 <= px[1] <= y2 + 1e-6
                n += 1
            assert 0.0 <= tr.visible_fraction <= 1.0
            assert tr.length_mm == pytest.approx(2 * s.half_length_mm)
    assert n > 50


def test_objects_enter_upstream_and_move_down_the_image() -> None:
    w = _world(seed=2, density_per_m2=6.0, slide_fraction=0.0, speed_drift_fraction=0.0)
    f0 = w.capture(0, 0, render=False)
    f1 = w.capture(4 * FRAME_NS, 4, render=False)
    assert f0.truth is not None and f1.truth is not None
    y0 = {t.object_id: t.y_w_mm for t in f0.truth}
    moved = [(t.y_w_mm - y0[t.object_id]) for t in f1.truth if t.object_id in y0]
    assert moved and np.allclose(moved, 2500.0 * 4 * FRAME_NS * 1e-9, atol=1e-3)
    # a run long enough for objects to enter and leave: new ids appear, old ones are retired
    ids_later = {t.object_id for t in w.capture(200 * FRAME_NS, 200, render=False).truth or ()}
    assert ids_later and not ids_later & set(y0)
    assert any(f.fate == "passed" for f in w.fates)


def test_render_false_costs_no_pixels_and_gives_the_same_truth() -> None:
    a = _world(seed=3, density_per_m2=10.0)
    b = _world(seed=3, density_per_m2=10.0)
    fa = a.capture(10 * FRAME_NS, 10, render=True)
    fb = b.capture(10 * FRAME_NS, 10, render=False)
    assert fa.image.shape == (CAM.height_px, CAM.width_px, 3) and fa.image.dtype == np.uint8
    assert fb.image.shape == (0, 0, 3)
    assert _truth_key(fa) == _truth_key(fb)


def test_objects_visibly_differ_from_the_belt_and_the_belt_alone_is_untouched() -> None:
    t = 30 * FRAME_NS
    full = _world(seed=8, density_per_m2=10.0).capture(t, 30, render=True)
    empty = _world(seed=8, density_per_m2=0.0).capture(t, 30, render=True)
    assert full.truth
    diff = np.abs(full.image.astype(np.int16) - empty.image.astype(np.int16)).max(axis=2)
    covered = np.zeros(diff.shape, bool)
    for tr in full.truth:
        x1, y1, x2, y2 = (
            math.floor(tr.box_px[0]),
            math.floor(tr.box_px[1]),
            int(tr.box_px[2]) + 2,
            int(tr.box_px[3]) + 2,
        )
        covered[y1:y2, x1:x2] = True
    # outside every box: same belt, light and noise, so identical pixels
    assert np.array_equal(full.image[~covered], empty.image[~covered])
    # inside the boxes of well-visible objects the picture differs strongly from the belt
    for tr in full.truth:
        if tr.visible_fraction < 0.8:
            continue
        cx, cy = CAM.belt_to_pixel(np.array([[tr.x_mm, tr.y_w_mm]]))[0]
        r = 4
        patch = diff[int(cy) - r : int(cy) + r, int(cx) - r : int(cx) + r]
        assert float(patch.mean()) > 8.0, f"class {MATERIAL_CLASSES[tr.class_id]} hardly differs from the belt"


def test_belt_texture_moves_with_the_odometer() -> None:
    cam = CameraModel.looking_down(320, 240, 40.0, 1100.0, 600.0)
    style = RenderStyle(noise_sigma=0.0, lighting_variation=0.0, vignetting=0.0, blur_scale=0.0)
    w = _world(cam, style, density_per_m2=0.0, speed_drift_fraction=0.0, belt_speed_mm_s=1000.0)
    a = w.capture(0, 0).image.astype(np.int32)
    b = w.capture(40_000_000, 1).image.astype(np.int32)  # 40 mm of travel
    rows_per_mm = (cam.height_px - 1) / (cam.view_extent_mm()[3] - cam.view_extent_mm()[2])
    errors = [float(np.abs(b[k:] - a[: len(a) - k]).mean()) for k in range(0, 80)]
    best = int(np.argmin(errors))
    assert best == pytest.approx(40.0 * rows_per_mm, abs=1.5)
    assert errors[best] < 0.5 * errors[0]


def test_occlusion_and_clipping_lower_the_visible_fraction() -> None:
    narrow = CameraModel.looking_down(640, 360, 40.0, 1100.0, 600.0)  # sees x = 200..1000 of a 1200 mm belt
    w = _world(narrow, density_per_m2=0.0)
    lower = w.place_object("cardboard", 600.0, 0.0, seed=1)
    upper = w.place_object("cardboard", 600.0, 0.0, seed=2)
    x_edge = w.view_mm[0]
    clipped = w.place_object("alu_can", x_edge, 0.0, seed=3)  # half of it left of the image
    f = w.capture(1, 0, render=False)
    truth = {t.object_id: t for t in f.truth or ()}
    specs = {s.object_id: s for s in w.population.specs}
    top, bottom = (upper, lower) if specs[upper].z > specs[lower].z else (lower, upper)
    assert truth[top].visible_fraction > 0.95
    area_ratio = min(specs[top].area_mm2, specs[bottom].area_mm2) / specs[bottom].area_mm2
    assert truth[bottom].visible_fraction < 1.0 - 0.8 * area_ratio + 0.1
    assert 0.35 < truth[clipped].visible_fraction < 0.65
    assert truth[clipped].box_px[0] == 0.0


def test_time_never_goes_back() -> None:
    w = _world(seed=1, density_per_m2=5.0)
    w.advance_to(100 * FRAME_NS)
    before = [(s.object_id, s.y_w_mm) for s in w.object_states()]
    w.advance_to(50 * FRAME_NS)
    assert w.now_ns == 100 * FRAME_NS
    assert [(s.object_id, s.y_w_mm) for s in w.object_states()] == before


def test_a_world_on_the_monotonic_clock_needs_its_start_time() -> None:
    w = _world(seed=1, density_per_m2=5.0)
    with pytest.raises(ValueError, match="t0_ns"):
        w.capture(5 * 24 * 3600 * 1_000_000_000, 0, render=False)  # a monotonic stamp after 5 days of uptime
    t0 = 5 * 24 * 3600 * 1_000_000_000
    cfg = SimConfig(seed=1, density_per_m2=5.0)
    w3 = SimWorld(cfg, belt_width_mm=1200.0, nominal_speed_mm_s=2500.0, encoder_counts_per_mm=10.0, camera=CAM, t0_ns=t0)
    ref = _world(seed=1, density_per_m2=5.0)
    assert _truth_key(w3.capture(t0 + 10 * FRAME_NS, 10, render=False)) == _truth_key(
        ref.capture(10 * FRAME_NS, 10, render=False)
    )


def test_style_can_change_per_frame() -> None:
    w = _world(seed=5, density_per_m2=8.0)
    rng = np.random.default_rng(0)
    means = []
    for i in range(3):
        w.set_style(RenderStyle.randomised(rng))
        means.append(float(w.capture(i * FRAME_NS, i).image.mean()))
    assert len({round(m, 1) for m in means}) == 3
    assert w.style != RenderStyle.from_sim(w.sim)


def test_capture_and_scheduling_from_two_threads() -> None:
    w = _world(seed=9, density_per_m2=6.0)
    bank = w.add_valve_bank(64, 18.75, 0.0, 1200.0)
    errors: list[BaseException] = []
    done = threading.Event()

    def capture_loop() -> None:
        try:
            for i in range(1, 150):
                w.capture(i * FRAME_NS, i, render=False)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            done.set()

    th = threading.Thread(target=capture_loop)
    th.start()
    k = 0
    while not done.is_set():
        s_now = w.odometer_mm(w.now_ns)
        bank.schedule(k, 10, 12, s_now + 500.0, s_now + 520.0)
        k += 1
        time.sleep(0.002)
    th.join(5.0)
    assert not errors
    w.advance_to(400 * FRAME_NS)
    assert k > 0
    assert bank.stats()["executed"] == bank.stats()["accepted"] > 0
    t_close = [r.t_close_ns for r in bank.executed]  # executed in time order
    assert t_close == sorted(t_close)
