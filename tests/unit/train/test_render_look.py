"""The wider look toward real belts changes only what it is asked to, and keeps the ground truth exact."""

from __future__ import annotations

import numpy as np

from sorter.sim.style import RenderStyle
from sorter.train.synth import SynthDataset, SynthRecipe


def test_original_look_and_cache_keys_are_unchanged() -> None:
    r = SynthRecipe(n_images=2, seed=1000003)
    assert "look" not in r.to_dict()  # caches and the held-out recipe keep their keys
    assert (
        r.key()
        == SynthRecipe(n_images=2, seed=1000003, look="sim").key()
        != SynthRecipe(n_images=2, seed=1000003, look="real").key()
    )
    s = RenderStyle.randomised(np.random.default_rng(5))
    assert (s.wear, s.debris_per_m2, s.specular, s.print_p, s.crease_p) == (0.0, 0.0, 0.0, 0.0, 0.0)


def test_real_look_renders_worn_belts_and_details_with_the_same_truth() -> None:
    styles = [RenderStyle.randomised_real(np.random.default_rng(k)) for k in range(40)]
    assert min(s.light_gain for s in styles) < 0.6 and max(s.wear for s in styles) > 0.5
    assert sum(1 for s in styles if max(s.belt_bgr) < 70) >= 8  # dark belts are common
    sim = SynthDataset(SynthRecipe(n_images=4, seed=7, width_px=640, height_px=360))
    real = SynthDataset(SynthRecipe(n_images=4, seed=7, width_px=640, height_px=360, look="real"))
    heights = []
    for i in range(4):
        a, b = sim[i], real[i]
        assert a.image.shape == b.image.shape == (360, 640, 3)
        heights.append(float(np.mean(b.boxes_px[:, 3] - b.boxes_px[:, 1])) if len(b.boxes_px) else 0.0)
        if len(a.boxes_px) and len(b.boxes_px):
            assert not np.array_equal(a.image, b.image)
    big = SynthDataset(SynthRecipe(n_images=1, seed=3, width_px=640, height_px=360, look="real"))[0]
    assert big.boxes_px.shape[0] == big.class_ids.shape[0]


def test_mixed_look_renders_each_scene_in_one_of_the_two_looks() -> None:
    n = 10
    kw = {"n_images": n, "seed": 11, "width_px": 320, "height_px": 180, "frames_per_scene": 1}
    sim, real, mixed = (SynthDataset(SynthRecipe(**kw, look=look)) for look in ("sim", "real", "mixed"))  # type: ignore[arg-type]
    picked = []
    for i in range(n):
        m = mixed[i]
        same_sim, same_real = np.array_equal(m.image, sim[i].image), np.array_equal(m.image, real[i].image)
        assert same_sim != same_real  # exactly one look, drawn whole (camera, style and truth)
        ref = sim[i] if same_sim else real[i]
        np.testing.assert_array_equal(m.boxes_px, ref.boxes_px)
        picked.append(same_real)
    assert 0 < sum(picked) < n  # both looks occur
    assert SynthRecipe(**kw, look="mixed").key() not in {SynthRecipe(**kw).key(), SynthRecipe(**kw, look="real").key()}  # type: ignore[arg-type]


def test_mixed_real_share_sets_the_share_of_real_scenes() -> None:
    n = 6
    kw = {"n_images": n, "seed": 11, "width_px": 320, "height_px": 180, "frames_per_scene": 1}
    sim, real = (SynthDataset(SynthRecipe(**kw, look=look)) for look in ("sim", "real"))  # type: ignore[arg-type]
    none_real = SynthDataset(SynthRecipe(**kw, look="mixed", mixed_real_share=0.0))  # type: ignore[arg-type]
    all_real = SynthDataset(SynthRecipe(**kw, look="mixed", mixed_real_share=1.0))  # type: ignore[arg-type]
    for i in range(n):
        np.testing.assert_array_equal(none_real[i].image, sim[i].image)
        np.testing.assert_array_equal(all_real[i].image, real[i].image)
    half = SynthRecipe(**kw, look="mixed")  # type: ignore[arg-type]
    assert "mixed_real_share" not in half.to_dict()  # the half-and-half recipe keeps its cache key
    assert half.key() == SynthRecipe(**kw, look="mixed", mixed_real_share=0.5).key()  # type: ignore[arg-type]
    assert SynthRecipe(**kw, look="mixed", mixed_real_share=0.25).to_dict()["mixed_real_share"] == 0.25  # type: ignore[arg-type]
    assert SynthRecipe(**kw, look="mixed", mixed_real_share=0.25).key() != half.key()  # type: ignore[arg-type]
    assert SynthRecipe(**kw, look="real", mixed_real_share=0.25).key() == SynthRecipe(**kw, look="real").key()  # type: ignore[arg-type]
