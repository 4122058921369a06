"""The detector's region of interest: the rectangle of each frame it looks at (pure numpy).

A real camera sees more than the belt (frame, guards, the floor). The belt's
footprint in the image follows from the calibrated camera model, so the
detector crops to it before the letterbox resize: off-belt pixels cost nothing
and cannot produce detections. Boxes are mapped back to full-frame pixels
(:class:`sorter.detect.preprocess.Letterbox` carries the crop offset), so
nothing downstream knows about the crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sorter.entities import ImageArray
from sorter.errors import ConfigError
from sorter.geometry import CameraModel


@dataclass(frozen=True, slots=True)
class Roi:
    """A rectangle of a frame: ``x0 <= x < x1``, ``y0 <= y < y1`` in image pixels.

    Attributes:
        x0_px: left column (inclusive).
        y0_px: top row (inclusive).
        x1_px: right column (exclusive).
        y1_px: bottom row (exclusive).
        frame_w_px: width of the frames it belongs to.
        frame_h_px: height of the frames it belongs to.
        source: where it comes from, in words (``sorter check``, logs).
    """

    x0_px: int
    y0_px: int
    x1_px: int
    y1_px: int
    frame_w_px: int
    frame_h_px: int
    source: str = ""

    def __post_init__(self) -> None:
        if not (0 <= self.x0_px < self.x1_px <= self.frame_w_px and 0 <= self.y0_px < self.y1_px <= self.frame_h_px):
            raise ValueError(
                f"region x {self.x0_px}..{self.x1_px}, y {self.y0_px}..{self.y1_px} px is empty or leaves the "
                f"{self.frame_w_px}x{self.frame_h_px} frame"
            )

    @property
    def w_px(self) -> int:
        """Width of the region."""
        return self.x1_px - self.x0_px

    @property
    def h_px(self) -> int:
        """Height of the region."""
        return self.y1_px - self.y0_px

    @property
    def share(self) -> float:
        """Share of the frame's pixels inside the region (0..1]."""
        return (self.w_px * self.h_px) / (self.frame_w_px * self.frame_h_px)

    @property
    def is_full(self) -> bool:
        """The region is the whole frame."""
        return self.share == 1.0

    def size_problem(self, image: ImageArray) -> str | None:
        """Why the region cannot crop ``image`` (another size than it was made for), or None."""
        h, w = image.shape[:2]
        if (w, h) == (self.frame_w_px, self.frame_h_px):
            return None
        return (
            f"frame is {w}x{h} px but the detector's region ({self.source or 'detector.roi'}) was made for "
            f"{self.frame_w_px}x{self.frame_h_px}; set camera.width_px/height_px to what the camera delivers"
        )

    def crop(self, image: ImageArray) -> ImageArray:
        """The region of ``image`` as a view (no copy).

        Raises:
            ValueError: the frame is not of the size the region was made for.
        """
        problem = self.size_problem(image)
        if problem is not None:
            raise ValueError(problem)
        return image[self.y0_px : self.y1_px, self.x0_px : self.x1_px]

    def describe(self) -> str:
        """One line: the rectangle, its share of the frame and its source."""
        return (
            f"x {self.x0_px}..{self.x1_px}, y {self.y0_px}..{self.y1_px} px ({self.w_px}x{self.h_px}, "
            f"{100.0 * self.share:.0f} % of the {self.frame_w_px}x{self.frame_h_px} frame; {self.source})"
        )


def explicit_roi(px: tuple[int, int, int, int], frame_w_px: int, frame_h_px: int) -> Roi:
    """The rectangle ``detector.roi.px`` of a ``frame_w_px x frame_h_px`` camera.

    Raises:
        ConfigError: it leaves the frame (the schema already refused an empty one).
    """
    x0, y0, x1, y1 = px
    if x1 > frame_w_px or y1 > frame_h_px:
        raise ConfigError(
            f"detector.roi.px = {list(px)} leaves the {frame_w_px}x{frame_h_px} px frame (camera.width_px/height_px); "
            f"keep x1 <= {frame_w_px} and y1 <= {frame_h_px}, e.g. [{x0}, {y0}, {min(x1, frame_w_px)}, {min(y1, frame_h_px)}]"
        )
    return Roi(x0, y0, x1, y1, frame_w_px, frame_h_px, "detector.roi.px")


def belt_roi(camera: CameraModel, belt_width_mm: float, margin_mm: float, step_px: int | None = None) -> Roi:
    """The bounding rectangle of the belt's footprint in the image, clipped to the image.

    The footprint is every pixel whose ray meets the belt plane in front of the camera at ``-margin_mm <= x_mm <=
    belt_width_mm + margin_mm`` (across the belt; along the belt the whole view counts). Pixels are sampled on a
    grid of ``step_px`` and the rectangle grown by one step on each side, so it never cuts the footprint; lens
    distortion and tilt are accounted for (each sample is back-projected through the full model).

    Args:
        camera: the calibrated camera model (image size, lens, belt pose).
        belt_width_mm: the belt's width (``belt.width_mm``); the belt spans ``x_mm`` 0..width.
        margin_mm: how far beyond each edge the region reaches (``detector.roi.margin_mm``).
        step_px: sampling step; None: about 1/240 of the larger image side.

    Raises:
        ConfigError: the camera does not see the belt at all.
    """
    w, h = camera.width_px, camera.height_px
    step = step_px or max(1, max(w, h) // 240)
    xs = np.arange(0, w + step - 1, step, dtype=np.float64).clip(max=w - 1)
    ys = np.arange(0, h + step - 1, step, dtype=np.float64).clip(max=h - 1)
    gx, gy = np.meshgrid(xs, ys)
    uv = np.column_stack([gx.ravel(), gy.ravel()])
    belt = camera.pixel_to_belt(uv)
    rot = camera.rotation
    depth_mm = belt[:, 0] * rot[2, 0] + belt[:, 1] * rot[2, 1] + camera.tvec_mm[2]  # camera z of the belt point
    on = (depth_mm > 0) & (belt[:, 0] >= -margin_mm) & (belt[:, 0] <= belt_width_mm + margin_mm)
    on &= np.isfinite(belt).all(axis=1)
    if not on.any():
        raise ConfigError(
            f"the camera model sees no part of the belt (x 0..{belt_width_mm:g} mm +- {margin_mm:g} mm): check "
            "belt.width_mm and the calibration's belt pose, or set detector.roi.mode: full"
        )
    hit = uv[on]
    x0 = max(0, math.floor(float(hit[:, 0].min())) - step)
    y0 = max(0, math.floor(float(hit[:, 1].min())) - step)
    x1 = min(w, math.ceil(float(hit[:, 0].max())) + step + 1)
    y1 = min(h, math.ceil(float(hit[:, 1].max())) + step + 1)
    return Roi(x0, y0, x1, y1, w, h, f"belt {belt_width_mm:g} mm + {margin_mm:g} mm margins, from the camera model")
