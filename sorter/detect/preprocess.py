"""Frame -> network input: letterbox resize (aspect kept, centred, grey padding), BGR, [0, 1], NCHW float32.

Training (:mod:`sorter.train`) uses these very functions so the network sees
identical pixels at training and at run time. Pure numpy + OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from sorter.detect.spec import ModelSpec
from sorter.entities import ImageArray


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a source image was placed in the network input.

    ``input = source * scale + pad``, per axis, in pixels.

    Attributes:
        scale: source-to-input scale factor (same on both axes).
        pad_x_px: left padding in input pixels.
        pad_y_px: top padding in input pixels.
        src_w_px: source image width.
        src_h_px: source image height.
        new_w_px: width of the resized source inside the input.
        new_h_px: height of the resized source inside the input.
    """

    scale: float
    pad_x_px: int
    pad_y_px: int
    src_w_px: int
    src_h_px: int
    new_w_px: int
    new_h_px: int

    def to_source(self, boxes_in_px: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map ``(N, 4)`` boxes from network-input pixels to source pixels, clipped to the source image."""
        b = np.asarray(boxes_in_px, dtype=np.float32).reshape(-1, 4)
        pad = np.array([self.pad_x_px, self.pad_y_px, self.pad_x_px, self.pad_y_px], np.float32)
        out = (b - pad) / np.float32(self.scale)
        np.clip(out[:, 0::2], 0.0, float(self.src_w_px), out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, float(self.src_h_px), out=out[:, 1::2])
        return out

    def to_input(self, boxes_src_px: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map ``(N, 4)`` boxes from source pixels to network-input pixels."""
        b = np.asarray(boxes_src_px, dtype=np.float32).reshape(-1, 4)
        pad = np.array([self.pad_x_px, self.pad_y_px, self.pad_x_px, self.pad_y_px], np.float32)
        return b * np.float32(self.scale) + pad


def letterbox_params(src_w_px: int, src_h_px: int, dst_w_px: int, dst_h_px: int) -> Letterbox:
    """Placement of a ``src`` image scaled to fit ``dst`` with its aspect ratio kept, centred."""
    if src_w_px <= 0 or src_h_px <= 0:
        raise ValueError(f"cannot letterbox an empty {src_w_px}x{src_h_px} image; the detector needs rendered pixels")
    scale = min(dst_w_px / src_w_px, dst_h_px / src_h_px)
    new_w = max(1, min(dst_w_px, round(src_w_px * scale)))
    new_h = max(1, min(dst_h_px, round(src_h_px * scale)))
    return Letterbox(scale, (dst_w_px - new_w) // 2, (dst_h_px - new_h) // 2, src_w_px, src_h_px, new_w, new_h)


def letterbox_image(
    image: ImageArray, dst_w_px: int, dst_h_px: int, pad_value: int, out: ImageArray | None = None
) -> tuple[ImageArray, Letterbox]:
    """Resize ``image`` (HxWx3 uint8) into a ``dst_h x dst_w x 3`` canvas; returns the canvas and the placement.

    Downscaling uses area averaging (no aliasing of thin edges and labels).
    """
    h, w = image.shape[:2]
    lb = letterbox_params(w, h, dst_w_px, dst_h_px)
    canvas = out if out is not None else np.empty((dst_h_px, dst_w_px, 3), np.uint8)
    canvas[...] = pad_value
    interp = cv2.INTER_AREA if lb.scale < 1.0 else cv2.INTER_LINEAR
    if (lb.new_w_px, lb.new_h_px) == (w, h):
        resized = image
    else:
        resized = np.asarray(cv2.resize(image, (lb.new_w_px, lb.new_h_px), interpolation=interp), np.uint8)
    canvas[lb.pad_y_px : lb.pad_y_px + lb.new_h_px, lb.pad_x_px : lb.pad_x_px + lb.new_w_px] = resized
    return canvas, lb


def to_tensor(canvas: ImageArray, out: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
    """HxWx3 uint8 BGR -> ``(1, 3, H, W)`` float32 in [0, 1] (channel order kept: the network is trained on BGR)."""
    h, w = canvas.shape[:2]
    dst = out if out is not None else np.empty((1, 3, h, w), np.float32)
    np.multiply(canvas.transpose(2, 0, 1), np.float32(1.0 / 255.0), out=dst[0], casting="unsafe")
    return dst


class Preprocessor:
    """Reusable letterbox + tensor conversion with preallocated buffers (one per backend)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._canvas = np.empty((spec.input_h_px, spec.input_w_px, 3), np.uint8)
        self._tensor = np.empty((1, 3, spec.input_h_px, spec.input_w_px), np.float32)

    def __call__(
        self, image: ImageArray, out: npt.NDArray[np.float32] | None = None
    ) -> tuple[npt.NDArray[np.float32], Letterbox]:
        """Preprocess one BGR frame; the returned tensor is a reused buffer (or ``out``)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"detector input must be an HxWx3 uint8 BGR image, got shape {image.shape} dtype {image.dtype}")
        s = self.spec
        canvas, lb = letterbox_image(image, s.input_w_px, s.input_h_px, s.pad_value, self._canvas)
        return to_tensor(canvas, self._tensor if out is None else out), lb
