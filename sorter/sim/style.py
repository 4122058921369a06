"""Look of the rendered camera image, and its domain randomisation for detector training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sorter.sim.config import SimConfig


@dataclass(frozen=True, slots=True)
class RenderStyle:
    """Appearance settings of the virtual camera.

    Attributes:
        belt_bgr: mean belt colour (BGR, 0..255).
        belt_texture_strength: amplitude of the belt's grain, blotches and wear
            streaks, in grey levels.
        light_gain: mean brightness gain.
        lighting_variation: relative amplitude of the slow global gain variation.
        vignetting: brightness lost at the image corners (0: none, 0.4: corners at 60 %).
        blur_scale: factor on the motion blur length (belt speed x exposure); 0 disables it.
        exposure_ms: exposure time that sets the motion blur length.
        noise_sigma: sensor noise standard deviation, in grey levels.
        colour_jitter: per-object colour offset, as a fraction of full scale.
        clutter_per_m2: belt-fixed distractors (specks, stains, stickers) per square metre of belt.
        antialias: anti-aliased object edges (slower).
        texture_seed: seed of the belt texture and clutter.
        wear: strength of a worn, dirty belt: dark longitudinal streaks, scuffs and grime patches (0: none).
        debris_per_m2: belt-fixed debris (paper shreds, plastic fragments, grit) per square metre; unlike the
            clutter specks, pieces are object-sized up to a few centimetres, so a detector learns to ignore them.
        specular: strength of specular highlights on plastics and cans (0: none).
        print_p: probability that an object carries a printed label with text lines and a logo block.
        crease_p: probability that an object is crumpled or partly flattened (shaded creases across it).
    """

    belt_bgr: tuple[int, int, int] = (58, 60, 62)
    belt_texture_strength: float = 9.0
    light_gain: float = 1.0
    lighting_variation: float = 0.15
    vignetting: float = 0.25
    blur_scale: float = 1.0
    exposure_ms: float = 0.5
    noise_sigma: float = 3.0
    colour_jitter: float = 0.06
    clutter_per_m2: float = 15.0
    antialias: bool = False
    texture_seed: int = 0
    wear: float = 0.0
    debris_per_m2: float = 0.0
    specular: float = 0.0
    print_p: float = 0.0
    crease_p: float = 0.0

    @staticmethod
    def from_sim(sim: SimConfig) -> RenderStyle:
        """Defaults for a simulated line (noise, lighting, blur and exposure from ``sim``)."""
        return RenderStyle(
            lighting_variation=sim.lighting_variation,
            blur_scale=1.0 if sim.motion_blur else 0.0,
            exposure_ms=sim.exposure_ms,
            noise_sigma=sim.noise_sigma,
            texture_seed=sim.seed,
        )

    @staticmethod
    def randomised(rng: np.random.Generator) -> RenderStyle:
        """A random style for domain randomisation (detector training data).

        Belts range from near-black rubber to grey, green and blue PVC; light,
        vignetting, blur, noise, colour shifts and clutter vary widely so a
        detector trained on them does not rely on one look.
        """
        kind = int(rng.integers(4))
        if kind == 0:  # black/grey rubber
            g = int(rng.integers(25, 110))
            belt = (g + int(rng.integers(-4, 5)), g + int(rng.integers(-4, 5)), g + int(rng.integers(-4, 5)))
        elif kind == 1:  # green PVC
            belt = (int(rng.integers(40, 90)), int(rng.integers(90, 150)), int(rng.integers(40, 90)))
        elif kind == 2:  # blue PVC
            belt = (int(rng.integers(110, 170)), int(rng.integers(70, 120)), int(rng.integers(30, 70)))
        else:  # light grey / white food-grade belt
            g = int(rng.integers(120, 200))
            belt = (g, g, g + int(rng.integers(-6, 7)))
        return RenderStyle(
            belt_bgr=belt,
            belt_texture_strength=float(rng.uniform(2.0, 22.0)),
            light_gain=float(rng.uniform(0.6, 1.35)),
            lighting_variation=float(rng.uniform(0.0, 0.3)),
            vignetting=float(rng.uniform(0.0, 0.5)),
            blur_scale=float(rng.uniform(0.0, 3.0)),
            exposure_ms=float(rng.uniform(0.2, 2.0)),
            noise_sigma=float(rng.uniform(0.5, 10.0)),
            colour_jitter=float(rng.uniform(0.0, 0.2)),
            clutter_per_m2=float(rng.uniform(0.0, 80.0)),
            antialias=bool(rng.random() < 0.5),
            texture_seed=int(rng.integers(0, 2**31 - 1)),
        )

    @staticmethod
    def randomised_real(rng: np.random.Generator) -> RenderStyle:
        """The wider randomisation toward real belts (training look ``real``).

        On top of :meth:`randomised`: dark and worn belts (a third of the belts nearly black, scuffed and
        streaked), grime patches, belt debris, specular highlights, printed labels and crumpled or partly
        flattened objects, and harsher light (under- and over-exposure).
        """
        from dataclasses import replace

        base = RenderStyle.randomised(rng)
        if rng.random() < 0.35:  # dark, worn rubber: the common real belt
            g = int(rng.integers(18, 60))
            base = replace(base, belt_bgr=(g, g + int(rng.integers(-3, 4)), g + int(rng.integers(-3, 6))))
        return replace(
            base,
            light_gain=float(rng.uniform(0.45, 1.6)),
            wear=float(rng.uniform(0.0, 1.0)),
            debris_per_m2=float(rng.uniform(0.0, 40.0)),
            specular=float(rng.uniform(0.0, 1.0)),
            print_p=float(rng.uniform(0.2, 0.9)),
            crease_p=float(rng.uniform(0.0, 0.7)),
        )
