"""The compiled kernels give the numpy tracker's results bit for bit, and their absence is handled.

Dense, noisy scenes exercise every branch of an update: boxes cut at both view
ends, touching objects (ambiguous pairs for the assignment solver), sliding
objects, misses, false positives, class confusion, dropped frames (no run of
consecutive detections) and retirement by time and travel. Both trackers see
the same frames; every output (the track of each measurement, every field of
every live and retired track, the work counters) must be identical to the bit.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any

import numpy as np
import pytest

import sorter.track
from sorter.entities import BeltMeasurements
from sorter.track import BeltTracker, TrackerOutput, TrackerParams, compiled, gate, motion, state
from sorter.track.tracker import KERNELS_ENV, load_kernels

VIEW_Y_MM = (-360.0, 360.0)
SPEED_MM_S = 2500.0
FPS = 60.0


@pytest.fixture(autouse=True)
def tracker_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """This module chooses the implementation of each tracker itself (overrides the conftest's)."""
    monkeypatch.delenv(KERNELS_ENV, raising=False)


def scene(seed: int, n_frames: int, in_view: float, n_classes: int = 6, step: int = 1) -> list[BeltMeasurements]:
    """Frames of a dense belt: objects stream through the view; every ``step``-th frame kept."""
    rng = np.random.default_rng(seed)
    view_len = VIEW_Y_MM[1] - VIEW_Y_MM[0]
    travel_mm = SPEED_MM_S * n_frames / FPS
    n_obj = int(in_view * (travel_mm + view_len) / view_len)
    u0 = rng.uniform(-travel_mm - 400.0, 400.0, n_obj)  # belt-fixed along-belt centre at t = 0
    x0 = rng.uniform(0.0, 1200.0, n_obj)
    length = rng.uniform(60.0, 300.0, n_obj)
    width = rng.uniform(40.0, 200.0, n_obj)
    cls = rng.integers(0, n_classes, n_obj)
    slide = rng.random(n_obj) < 0.2
    vu = np.where(slide, rng.uniform(-40.0, 40.0, n_obj), 0.0)  # mm/s
    vx = np.where(slide, rng.uniform(-40.0, 40.0, n_obj), 0.0)
    frames = []
    for k in range(0, n_frames, step):
        t_s = k / FPS
        s_mm = SPEED_MM_S * t_s
        y = u0 + vu * t_s + s_mm
        x = x0 + vx * t_s
        lo = np.maximum(y - length / 2, VIEW_Y_MM[0])
        hi = np.minimum(y + length / 2, VIEW_Y_MM[1])
        seen = (hi - lo > 10.0) & (rng.random(n_obj) > 0.05)
        idx = seen.nonzero()[0]
        n_fp = rng.poisson(0.3)
        yc = np.concatenate(((lo + hi)[idx] / 2, rng.uniform(*VIEW_Y_MM, n_fp))) + rng.normal(0, 3.0, idx.size + n_fp)
        xc = np.concatenate((x[idx], rng.uniform(0, 1200, n_fp))) + rng.normal(0, 3.0, idx.size + n_fp)
        ln = np.concatenate(((hi - lo)[idx], rng.uniform(30, 120, n_fp))) * rng.uniform(0.9, 1.1, idx.size + n_fp)
        wd = np.concatenate((width[idx], rng.uniform(30, 120, n_fp))) * rng.uniform(0.9, 1.1, idx.size + n_fp)
        c = np.concatenate((cls[idx], rng.integers(0, n_classes, n_fp)))
        flip = rng.random(c.size) < 0.05
        c[flip] = rng.integers(0, n_classes, int(flip.sum()))
        order = rng.permutation(c.size)
        frames.append(
            BeltMeasurements(
                t_capture_ns=round(t_s * 1e9),
                s_capture_mm=s_mm,
                x_mm=xc[order],
                y_w_mm=yc[order],
                length_mm=ln[order],
                width_mm=wd[order],
                scores=rng.uniform(0.3, 1.0, c.size)[order],
                class_ids=c[order].astype(np.int32),
            )
        )
    return frames


def digest(out: TrackerOutput) -> tuple[Any, ...]:
    """Every output field, floats as their bytes."""
    cols = out.active
    arrays = tuple(getattr(cols, f.name).tobytes() for f in dataclasses.fields(cols))
    return out.meas_track_ids, arrays, tuple(dataclasses.astuple(t) for t in out.retired)


def run_both(frames: list[BeltMeasurements], params: TrackerParams) -> tuple[int, int, int]:
    """Feed both trackers; assert equal outputs frame by frame. Returns work seen: (ambiguous frames, retired, new)."""
    fast, ref = BeltTracker(params, "compiled"), BeltTracker(params, "numpy")
    assert fast.compiled and not ref.compiled
    solved = retired = new = 0
    for k, meas in enumerate(frames):
        a, b = fast.update(meas), ref.update(meas)
        assert digest(a) == digest(b), f"frame {k} differs"
        assert fast.stats == ref.stats, f"frame {k}: {fast.stats} != {ref.stats}"
        solved += fast.stats.n_solved > 0
        retired += fast.stats.n_retired
        new += fast.stats.n_new
    return solved, retired, new


@pytest.mark.parametrize("seed", [0, 1])
def test_dense_belt_is_identical_bit_for_bit(seed: int) -> None:
    params = TrackerParams(view_y_min_mm=VIEW_Y_MM[0], view_y_max_mm=VIEW_Y_MM[1])
    solved, retired, new = run_both(scene(seed, 600, in_view=60.0), params)
    assert solved > 100  # the solver path ran (touching objects), as did retirement and new tracks
    assert retired > 100 and new > 100


def test_slow_loop_and_other_settings_are_identical() -> None:
    """Every 5th frame (runs broken, travel-based confirmation), single-view confirmation, no view ends."""
    frames = scene(2, 900, in_view=30.0, n_classes=9, step=5)
    run_both(frames, TrackerParams(view_y_min_mm=VIEW_Y_MM[0], view_y_max_mm=VIEW_Y_MM[1], n_classes=9, confirm_single_score=0.9))
    run_both(frames, TrackerParams(n_classes=9, min_hits=1, confirm_needs_full_view=False))
    run_both(frames, TrackerParams(view_y_min_mm=VIEW_Y_MM[0], n_classes=9, max_unseen_ns=50_000_000))


def test_row_layouts_agree_with_the_numpy_modules() -> None:
    """The kernels compile against copies of the table layouts; they must be the same rows."""
    assert (compiled._U, compiled._LEN, compiled._PUU, compiled._S_REF, compiled._S_RUN) == (
        state.U, state.LEN, state.PUU, state.S_REF, state.S_RUN
    )  # fmt: skip
    assert (compiled._SCORE_SUM, compiled._VU, compiled._PUV, compiled._PVV) == (state.SCORE_SUM, state.VU, state.PUV, state.PVV)
    assert (compiled._ID, compiled._T_FIRST, compiled._T_LAST, compiled._HITS, compiled._RUN) == (
        state.ID, state.T_FIRST, state.T_LAST, state.HITS, state.RUN
    )  # fmt: skip
    assert (compiled._CONFIRMED, compiled._SEEN_FULL) == (state.CONFIRMED, state.SEEN_FULL)
    pred_rows = (motion.PRED_POS.start, motion.PRED_SIZE.start, motion.PRED_P00.start)
    assert pred_rows == (compiled._P_POS, compiled._P_SIZE, compiled._P_P00)
    pred_rows = (motion.PRED_DS, motion.PRED_P01.start, motion.PRED_P11.start)
    assert pred_rows == (compiled._P_DS, compiled._P_P01, compiled._P_P11)
    assert compiled._N_PAIR == gate.N_PAIR and gate.PAIR_D2 == 7 and gate.PAIR_CUT == 6 and gate.MEAS_CUT == 4


def test_unknown_choice_names_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KERNELS_ENV, "fast")
    with pytest.raises(ValueError, match=r"'fast' unknown .*SORTER_TRACKER_KERNELS.*auto, compiled or numpy"):
        BeltTracker()


def test_without_numba_auto_falls_back_to_numpy_and_compiled_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.delitem(sys.modules, "sorter.track.compiled")
    monkeypatch.delattr(sorter.track, "compiled")
    monkeypatch.setattr("sorter.track.tracker._warned_no_numba", [])
    with caplog.at_level(logging.WARNING, logger="sorter.track.tracker"):
        assert load_kernels("auto") is None
    assert "numba is not installed" in caplog.text
    with pytest.raises(ImportError, match="pip install numba"):
        load_kernels("compiled")
    frames = scene(3, 60, in_view=10.0)
    tracker = BeltTracker(TrackerParams(view_y_min_mm=VIEW_Y_MM[0], view_y_max_mm=VIEW_Y_MM[1]))
    assert not tracker.compiled
    assert sum(len(tracker.update(m).meas_track_ids) for m in frames) > 100


def test_env_override_selects_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KERNELS_ENV, "numpy")
    assert not BeltTracker(kernels="compiled").compiled
    monkeypatch.setenv(KERNELS_ENV, "compiled")
    assert BeltTracker(kernels="numpy").compiled


def test_a_kernel_that_fails_to_build_falls_back_under_auto_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("no implementation of function for signature")  # as numba's TypingError reads

    monkeypatch.setattr(compiled, "predict_gate", broken)
    monkeypatch.setattr("sorter.track.tracker._warned_no_numba", [])
    with caplog.at_level(logging.WARNING, logger="sorter.track.tracker"):
        tracker = BeltTracker(kernels="auto")
    assert not tracker.compiled
    assert "failed to build (RuntimeError: no implementation" in caplog.text
    assert tracker.update(scene(4, 1, in_view=5.0)[0]).meas_track_ids  # the numpy implementation runs
    with pytest.raises(RuntimeError, match="no implementation"):
        BeltTracker(kernels="compiled")


def test_no_kernel_compiles_after_construction() -> None:
    """Inputs of other dtypes, strided or read-only reach the kernels as the types the warm-up compiled for:
    a new compilation in the middle of a run would stall the loop for seconds."""
    tracker = BeltTracker(TrackerParams(view_y_min_mm=VIEW_Y_MM[0], view_y_max_mm=VIEW_Y_MM[1]), "compiled")
    kernels = [v for v in vars(compiled).values() if hasattr(v, "signatures") and hasattr(v, "py_func")]
    before = {k.py_func.__name__: len(k.signatures) for k in kernels}
    assert set(before) >= {"predict_gate", "correct", "split_pairs", "cost_args", "retire", "columns", "start_tracks"}
    for k, meas in enumerate(scene(5, 120, in_view=30.0)):
        n = len(meas)
        wide = np.zeros((n, 2))  # every column a strided view
        wide[:, 0] = meas.x_mm
        kw: dict[str, Any] = {"x_mm": wide[:, 0]}
        if k % 3 == 1:
            kw["scores"] = meas.scores.astype(np.float32)
            kw["class_ids"] = meas.class_ids.astype(np.int16)
        if k % 3 == 2:
            for name in ("y_w_mm", "length_mm", "width_mm", "scores"):
                a = getattr(meas, name).copy()
                a.flags.writeable = False
                kw[name] = a
        tracker.update(dataclasses.replace(meas, **kw))
    assert {k.py_func.__name__: len(k.signatures) for k in kernels} == before


WARM_UP_PROBE = """
import sys
from sorter.config import load_config
from sorter.runtime.params import tracker_params
from sorter.runtime.plant import camera_model
from sorter.track import BeltTracker, TrackerParams, compiled

name = sys.argv[1]
if name == "no-view-ends":
    params = TrackerParams()
else:
    cfg = load_config(None if name == "default" else name, [])
    params = tracker_params(cfg, camera_model(cfg))
tracker = BeltTracker(params, "compiled")
print(" ".join(k for k in compiled.KERNELS if not getattr(compiled, k).signatures) or "all")
"""


@pytest.mark.parametrize("line", ["default", "sim-robot.yaml", "no-view-ends"])
def test_construction_compiles_every_kernel_for_the_shipped_lines(line: str) -> None:
    """In a fresh process (no kernel called yet), building the line's tracker reaches every kernel, the solver's
    too: one left out would compile in the loop's first frame that needs it, seconds of a live line unseen."""
    import subprocess

    env = {k: v for k, v in __import__("os").environ.items() if k != KERNELS_ENV}
    r = subprocess.run([sys.executable, "-c", WARM_UP_PROBE, line], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["all"], r.stdout
