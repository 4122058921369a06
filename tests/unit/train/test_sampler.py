"""Active-learning sampler: each rule fires where it should, caps hold, the pixel linker keeps ids."""

from __future__ import annotations

import numpy as np

from sorter.train.data.sampler import ActiveSampler, NoveltyModel, Observation, PixelLinker, SamplerConfig, colour_feature

MS = 1_000_000


def obs(
    t_ms: float, scores: list[float], classes: list[int], tracks: list[int] | None = None, feature: np.ndarray | None = None
) -> Observation:
    n = len(scores)
    return Observation(
        int(t_ms * MS),
        np.array(scores, np.float32),
        np.array(classes, np.int32),
        np.array(tracks if tracks is not None else [0] * n, np.int64),
        feature,
    )


def quiet(**kw: float) -> SamplerConfig:
    return SamplerConfig(random_share=0.0, min_gap_ms=0.0, **kw)  # type: ignore[arg-type]


def test_near_threshold_fires_inside_the_band_only() -> None:
    s = ActiveSampler(quiet(threshold=0.3, threshold_band=0.1))
    assert s.decide(obs(0, [0.35], [0])).reasons == ("near_threshold",)
    assert not s.decide(obs(10, [0.9], [0])).chosen
    assert not s.decide(obs(20, [0.1], [0])).chosen
    assert not s.decide(obs(30, [], [])).chosen


def test_class_flip_along_a_track_fires_once() -> None:
    s = ActiveSampler(quiet(threshold_band=0.0))
    assert not s.decide(obs(0, [0.9], [1], [7])).chosen
    d = s.decide(obs(10, [0.9], [2], [7]))
    assert d.chosen and "class_flip" in d.reasons
    assert not s.decide(obs(20, [0.9], [1], [7])).chosen  # already reported


def test_track_never_confident_fires_after_enough_hits() -> None:
    s = ActiveSampler(quiet(threshold=0.3, threshold_band=0.05, confident_score=0.6, min_track_hits=4))
    reasons = [s.decide(obs(10 * k, [0.5], [3], [4])).reasons for k in range(6)]
    assert reasons[:3] == [(), (), ()] and reasons[3] == ("never_confident",) and reasons[4:] == [(), ()]
    s2 = ActiveSampler(quiet(threshold=0.3, threshold_band=0.05, confident_score=0.6, min_track_hits=4))
    assert not any(s2.decide(obs(10 * k, [0.5 if k else 0.8], [3], [5])).chosen for k in range(6))  # once confident, never asked


def test_novelty_relative_to_the_reference_and_to_what_was_chosen() -> None:
    rng = np.random.default_rng(0)
    ref = [colour_feature(np.clip(rng.normal(90, 5, (72, 128, 3)), 0, 255).astype(np.uint8)) for _ in range(8)]
    s = ActiveSampler(quiet(novelty_distance=3.0), NoveltyModel(np.stack(ref)))
    known = colour_feature(np.full((72, 128, 3), 90, np.uint8))
    new = colour_feature(np.full((72, 128, 3), 200, np.uint8))
    assert not s.decide(obs(0, [], [], feature=known)).chosen
    assert s.decide(obs(10, [], [], feature=new)).reasons == ("novel",)
    assert not s.decide(obs(20, [], [], feature=new)).chosen  # the chosen look is known now


def test_random_share_matches_its_rate() -> None:
    s = ActiveSampler(SamplerConfig(random_share=0.1, min_gap_ms=0.0, max_per_hour=10**6, seed=3))
    n = sum(s.decide(obs(k, [], [])).chosen for k in range(5000))
    assert 400 < n < 600


def test_caps_per_hour_per_class_and_gap() -> None:
    s = ActiveSampler(quiet(max_per_hour=5, max_per_class_per_hour=100))
    chosen = [s.decide(obs(1000 * k, [0.3], [0])).chosen for k in range(10)]
    assert sum(chosen) == 5 and s.capped == 5
    assert s.decide(obs(3_600_000 + 1, [0.3], [0])).chosen  # a new hour
    c = ActiveSampler(quiet(max_per_hour=100, max_per_class_per_hour=2))
    assert [c.decide(obs(1000 * k, [0.3], [1])).chosen for k in range(4)] == [True, True, False, False]
    assert c.decide(obs(5000, [0.3], [2])).chosen  # another class still has room
    g = ActiveSampler(SamplerConfig(random_share=0.0, min_gap_ms=500.0))
    assert [g.decide(obs(t, [0.3], [0])).chosen for t in (0, 100, 499, 600)] == [True, False, False, True]


def test_pixel_linker_keeps_ids_of_moving_boxes_and_ends_lost_ones() -> None:
    link = PixelLinker(min_iou=0.3, max_gap_frames=1)
    a, _ = link.update(np.array([[0, 0, 50, 30], [200, 0, 250, 30]], np.float32))
    b, _ = link.update(np.array([[205, 0, 255, 30], [5, 0, 55, 30]], np.float32))
    assert b.tolist() == [a[1], a[0]]
    link.update(np.zeros((0, 4), np.float32))
    _, ended = link.update(np.zeros((0, 4), np.float32))
    assert sorted(ended) == sorted(a.tolist())
    c, _ = link.update(np.array([[0, 0, 50, 30]], np.float32))
    assert c[0] not in a
