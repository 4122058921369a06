"""Training and validation images rendered by the simulator, with heavy domain randomisation.

Images come in *scenes*: a fresh :class:`~sorter.sim.world.SimWorld` per
scene, seeded from ``(recipe seed, scene index)``, with a randomised look
(:meth:`RenderStyle.randomised`: belt colour and texture, light, vignetting,
blur, noise, object colours, clutter), a random object density and belt speed
(motion blur), and a jittered camera mount (height, field of view, tilt,
lateral position, lens distortion), so object scale and perspective vary too.
Each scene gives ``frames_per_scene`` frames far enough apart in time that the
belt content is new.

Ground truth: objects whose visible fraction (inside the image and not
occluded) is below ``min_visible_fraction`` are kept as *ignored*: the
trainer does not learn them and the evaluator does not score them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sorter.entities import MATERIAL_CLASSES, Frame
from sorter.geometry import CameraModel
from sorter.train.samples import Sample, make_sample

RECIPE_VERSION = 1
#: Base seed of the held-out evaluation set; training uses ``2 * seed`` and validation ``2 * seed + 1``
#: (``sorter train`` checks that their simulator seeds are disjoint).
HELDOUT_SEED = 1_000_003
HELDOUT_IMAGES = 300
#: share of the scenes of a ``look: mixed`` recipe rendered with the real look
MIXED_REAL_SHARE = 0.5


@dataclass(frozen=True)
class SynthRecipe:
    """How a rendered dataset is made (stored beside the model as its data recipe).

    Attributes:
        n_images: number of images.
        seed: base seed; scene ``k`` uses the simulator seed ``scene_seed(seed, k)``.
        width_px: image width.
        height_px: image height.
        frames_per_scene: frames taken from one simulated world.
        frame_gap_s: simulated time between those frames.
        density_per_m2: range of object density (uniform).
        speed_mm_s: range of belt speed (uniform).
        mount_height_mm: range of camera height above the belt.
        hfov_deg: range of horizontal field of view.
        tilt_deg: range of camera tilt.
        centre_x_jitter_mm: lateral camera offset from the belt centre, +-.
        distortion_k1: range of the first radial distortion coefficient.
        randomise_style: randomise the look per scene (False: the default look of ``sim``).
        min_visible_fraction: objects less visible than this are ignored.
        belt_width_mm: belt width.
        look: ``sim`` (:meth:`RenderStyle.randomised`) or ``real`` (:meth:`RenderStyle.randomised_real`: worn and dirty
            belts, debris, specular plastics, printed labels, creased objects, and camera heights 650-1800 mm so
            objects appear over a wider range of scales), or ``mixed``: each scene draws one of the two, half and
            half, so a model learns the real look without forgetting the simulated line's.
        version: recipe format version.
    """

    n_images: int = 100
    seed: int = 0
    width_px: int = 1280
    height_px: int = 720
    frames_per_scene: int = 4
    frame_gap_s: float = 0.45
    density_per_m2: tuple[float, float] = (1.0, 6.0)
    speed_mm_s: tuple[float, float] = (1000.0, 4000.0)
    mount_height_mm: tuple[float, float] = (950.0, 1250.0)
    hfov_deg: tuple[float, float] = (54.0, 66.0)
    tilt_deg: tuple[float, float] = (-6.0, 6.0)
    centre_x_jitter_mm: float = 60.0
    distortion_k1: tuple[float, float] = (-0.08, 0.0)
    randomise_style: bool = True
    min_visible_fraction: float = 0.5
    belt_width_mm: float = 1200.0
    version: int = RECIPE_VERSION
    look: str = "sim"
    mixed_real_share: float = MIXED_REAL_SHARE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``look`` only when not the original ``sim``, ``mixed_real_share`` only on a ``mixed`` look
        and when not the original half, so existing cache keys stay valid)."""
        d = asdict(self)
        if d["look"] != "mixed" or d["mixed_real_share"] == MIXED_REAL_SHARE:
            del d["mixed_real_share"]  # no effect on another look
        if d["look"] == "sim":
            del d["look"]
        return d

    def key(self) -> str:
        """Stable text key of the recipe (cache file names)."""
        import hashlib

        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def n_scenes(self) -> int:
        """Number of simulated worlds."""
        return -(-self.n_images // self.frames_per_scene)


def scene_seed(base_seed: int, scene: int) -> int:
    """Simulator seed of scene ``scene`` of a dataset with ``base_seed``."""
    return int(np.random.SeedSequence([base_seed, scene, 0x5EED]).generate_state(1)[0])


def scene_seeds(recipe: SynthRecipe) -> set[int]:
    """Every simulator seed a recipe uses (to prove held-out sets share none with training)."""
    return {scene_seed(recipe.seed, k) for k in range(recipe.n_scenes)}


def frame_to_sample(frame: Frame, min_visible_fraction: float, image_id: int) -> Sample:
    """Ground truth of a rendered frame as a sample; low-visibility objects are ignored."""
    truth = frame.truth or ()
    boxes = [t.box_px for t in truth]
    classes = [t.class_id for t in truth]
    ignore = [t.visible_fraction < min_visible_fraction for t in truth]
    s = make_sample(frame.image, boxes, classes, ignore, image_id)
    ok = (s.boxes_px[:, 2] - s.boxes_px[:, 0] >= 1.0) & (s.boxes_px[:, 3] - s.boxes_px[:, 1] >= 1.0)
    return make_sample(s.image, s.boxes_px[ok], s.class_ids[ok], s.ignore[ok], image_id)


class SynthDataset:
    """Renders the images of a recipe on access (sequential access is cheapest: one world per scene)."""

    def __init__(self, recipe: SynthRecipe, class_names: tuple[str, ...] = MATERIAL_CLASSES) -> None:
        self.recipe = recipe
        self.class_names = class_names
        self._scene = -1
        self._next_frame = 0
        self._world: Any = None

    def __len__(self) -> int:
        return self.recipe.n_images

    def _make_world(self, scene: int) -> Any:
        from sorter.sim.config import SimConfig
        from sorter.sim.style import RenderStyle
        from sorter.sim.world import SimWorld

        r = self.recipe
        seed = scene_seed(r.seed, scene)
        rng = np.random.default_rng([seed, 77])
        real = r.look == "real" or (r.look == "mixed" and np.random.default_rng([seed, 78]).random() < r.mixed_real_share)
        speed = float(rng.uniform(*r.speed_mm_s))
        sim = SimConfig(seed=seed % (2**31), density_per_m2=float(rng.uniform(*r.density_per_m2)), belt_speed_mm_s=speed)
        camera = CameraModel.looking_down(
            width_px=r.width_px,
            height_px=r.height_px,
            hfov_deg=float(rng.uniform(*r.hfov_deg)),
            height_mm=float(rng.uniform(*((650.0, 1800.0) if real else r.mount_height_mm))),
            centre_x_mm=r.belt_width_mm / 2.0 + float(rng.uniform(-r.centre_x_jitter_mm, r.centre_x_jitter_mm)),
            tilt_deg=float(rng.uniform(*r.tilt_deg)),
            dist=(float(rng.uniform(*r.distortion_k1)), 0.01, 0.0, 0.0, 0.0),
        )
        if real:
            style: RenderStyle | None = RenderStyle.randomised_real(rng) if r.randomise_style else None
        else:
            style = RenderStyle.randomised(rng) if r.randomise_style else None
        return SimWorld(
            sim,
            belt_width_mm=r.belt_width_mm,
            nominal_speed_mm_s=speed,
            encoder_counts_per_mm=10.0,
            camera=camera,
            class_names=self.class_names,
            style=style,
        )

    def __getitem__(self, index: int) -> Sample:
        r = self.recipe
        if not 0 <= index < r.n_images:
            raise IndexError(index)
        scene, k = divmod(index, r.frames_per_scene)
        if scene != self._scene or k < self._next_frame:
            self._world = self._make_world(scene)
            self._scene = scene
        self._next_frame = k + 1
        t_ns = int((0.05 + k * r.frame_gap_s) * 1e9)
        frame = self._world.capture(t_ns, frame_index=index, render=True)
        return frame_to_sample(frame, r.min_visible_fraction, index + 1)
