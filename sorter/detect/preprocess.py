"""Frame -> network input: crop to the region of interest, letterbox resize (aspect kept, centred, grey padding),
BGR, [0, 1], NCHW float32.

Training (:mod:`sorter.train`) uses these very functions so the network sees
identical pixels at training and at run time. Pure numpy + OpenCV.

Cost (``scripts/bench_preprocess.py``): the crop is a view, the resize writes
straight into the reused canvas, and only the padding strips are filled, so a
frame is one resize and one scaling pass to float32 CHW.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from sorter.detect.roi import Roi
from sorter.detect.spec import ModelSpec
from sorter.entities import ImageArray

log = logging.getLogger(__name__)

#: names the resize of :func:`resize_into` and the box mapping of :class:`Letterbox` (``c``: pixel centres); caches of
#: letterboxed images and their boxes carry it, so a change invalidates them
RESIZE_NAME = "linear-c"


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a source image was placed in the network input.

    Coordinates are OpenCV's pixel-centre coordinates (pixel ``i`` spans ``[i - 0.5, i + 0.5]``), the convention of
    the camera model, the renderer and ``cv2.resize``: ``input = (source + 0.5) * s - 0.5 + pad`` per axis, where
    ``s`` is the scale the resize actually applied on that axis (``new / src``, which rounding can make differ from
    ``scale`` by a fraction of a pixel over the image). Mapping box corners with ``source * scale`` instead puts
    every box ``0.5 / s - 0.5`` source pixels off the pixels it was drawn from (1.2 px for 1280 -> 384).

    Attributes:
        scale: source-to-input scale factor (same on both axes).
        pad_x_px: left padding in input pixels.
        pad_y_px: top padding in input pixels.
        src_w_px: source image width.
        src_h_px: source image height.
        new_w_px: width of the resized source inside the input.
        new_h_px: height of the resized source inside the input.
        offset_x_px: left edge of the source in the frame (a crop's offset; 0 for a whole frame).
        offset_y_px: top edge of the source in the frame.
    """

    scale: float
    pad_x_px: int
    pad_y_px: int
    src_w_px: int
    src_h_px: int
    new_w_px: int
    new_h_px: int
    offset_x_px: int = 0
    offset_y_px: int = 0

    def to_source(self, boxes_in_px: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map ``(N, 4)`` boxes from network-input pixels to frame pixels, clipped to the source (the crop).

        Clipping to the crop keeps every box, and so its centre, inside the region the detector looked at.
        """
        b = np.asarray(boxes_in_px, dtype=np.float32).reshape(-1, 4)
        pad = np.array([self.pad_x_px, self.pad_y_px, self.pad_x_px, self.pad_y_px], np.float32)
        sx, sy = self.scale_xy
        s = np.array([sx, sy, sx, sy], np.float32)
        out = (b - pad + np.float32(0.5)) / s - np.float32(0.5)
        np.clip(out[:, 0::2], 0.0, float(self.src_w_px - 1), out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, float(self.src_h_px - 1), out=out[:, 1::2])
        if self.offset_x_px or self.offset_y_px:
            out += np.array([self.offset_x_px, self.offset_y_px, self.offset_x_px, self.offset_y_px], np.float32)
        return out

    def to_input(self, boxes_src_px: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map ``(N, 4)`` boxes from frame pixels to network-input pixels."""
        b = np.asarray(boxes_src_px, dtype=np.float32).reshape(-1, 4)
        off = np.array([self.offset_x_px, self.offset_y_px, self.offset_x_px, self.offset_y_px], np.float32)
        pad = np.array([self.pad_x_px, self.pad_y_px, self.pad_x_px, self.pad_y_px], np.float32)
        sx, sy = self.scale_xy
        s = np.array([sx, sy, sx, sy], np.float32)
        out: npt.NDArray[np.float32] = (b - off + np.float32(0.5)) * s - np.float32(0.5) + pad
        return out

    @property
    def scale_xy(self) -> tuple[float, float]:
        """The source-to-input scale the resize applied on each axis (``new / src``)."""
        return self.new_w_px / self.src_w_px, self.new_h_px / self.src_h_px

    def with_offset(self, x_px: int, y_px: int) -> Letterbox:
        """The same placement for a source that is a crop at ``(x_px, y_px)`` of a frame."""
        return replace(self, offset_x_px=x_px, offset_y_px=y_px)


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

    One ``cv2.resize`` writes straight into the canvas (no temporary image) and only the padding strips are
    filled (see :func:`resize_into` for the interpolation).
    """
    h, w = image.shape[:2]
    lb = letterbox_params(w, h, dst_w_px, dst_h_px)
    canvas = out if out is not None else np.empty((dst_h_px, dst_w_px, 3), np.uint8)
    x0, y0 = lb.pad_x_px, lb.pad_y_px
    x1, y1 = x0 + lb.new_w_px, y0 + lb.new_h_px
    canvas[:y0] = pad_value
    canvas[y1:] = pad_value
    canvas[y0:y1, :x0] = pad_value
    canvas[y0:y1, x1:] = pad_value
    resize_into(image, canvas[y0:y1, x0:x1])
    return canvas, lb


def resize_into(image: ImageArray, dst: ImageArray) -> None:
    """Resize ``image`` into ``dst`` (a view of the canvas), bilinear (INTER_LINEAR).

    INTER_AREA (a box filter, no aliasing) costs 10-20x more at the non-integer factors a crop gives (about 4 ms
    of one core for 1344x864 -> 348x224 against 0.2 ms) and bought nothing measurable: the shipped model (trained
    on INTER_AREA inputs) scores mAP@0.5 0.9519 / mAP 0.7788 with INTER_LINEAR against 0.9523 / 0.7812 with
    INTER_AREA on the 300 rendered held-out images of ``sorter eval-detector``.
    """
    h, w = image.shape[:2]
    dh, dw = dst.shape[:2]
    if (w, h) == (dw, dh):
        dst[...] = image
        return
    cv2.resize(image, (dw, dh), dst=dst, interpolation=cv2.INTER_LINEAR)


def to_tensor(canvas: ImageArray, out: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
    """HxWx3 uint8 BGR -> ``(1, 3, H, W)`` float32 in [0, 1] (channel order kept: the network is trained on BGR)."""
    h, w = canvas.shape[:2]
    dst = out if out is not None else np.empty((1, 3, h, w), np.float32)
    np.multiply(canvas.transpose(2, 0, 1), np.float32(1.0 / 255.0), out=dst[0], casting="unsafe")
    return dst


class Preprocessor:
    """Reusable crop + letterbox + tensor conversion with preallocated buffers (one per backend).

    Args:
        spec: the model's input contract.
        roi: the region of each frame to look at (None: the whole frame); boxes still map to whole-frame pixels.
    """

    def __init__(self, spec: ModelSpec, roi: Roi | None = None) -> None:
        self.spec = spec
        self.roi = roi
        self._canvas = np.empty((spec.input_h_px, spec.input_w_px, 3), np.uint8)
        self._tensor = np.empty((1, 3, spec.input_h_px, spec.input_w_px), np.float32)
        self._size_warned = False

    def __call__(
        self, image: ImageArray, out: npt.NDArray[np.float32] | None = None
    ) -> tuple[npt.NDArray[np.float32], Letterbox]:
        """Preprocess one BGR frame; the returned tensor is a reused buffer (or ``out``).

        A frame of another size than the region was made for is preprocessed whole (warned once): the loop
        already reports the camera's wrong size, and a crop made for another size would cut the wrong pixels.

        Raises:
            ValueError: not an HxWx3 uint8 image.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"detector input must be an HxWx3 uint8 BGR image, got shape {image.shape} dtype {image.dtype}")
        s, roi = self.spec, self.roi
        problem = None if roi is None else roi.size_problem(image)
        if problem is not None:  # fail safe: the loop reports the wrong size too (the camera_size fault)
            if not self._size_warned:
                log.warning("%s; the detector looks at the whole frame meanwhile", problem)
                self._size_warned = True
            roi = None
        src = image if roi is None else roi.crop(image)
        canvas, lb = letterbox_image(src, s.input_w_px, s.input_h_px, s.pad_value, self._canvas)
        if roi is not None:
            lb = lb.with_offset(roi.x0_px, roi.y0_px)
        return to_tensor(canvas, self._tensor if out is None else out), lb

