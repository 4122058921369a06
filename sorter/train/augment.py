"""Cheap on-the-fly augmentation of letterboxed training images (on top of the renderer's randomisation).

Geometric: flips, zoom and shift (boxes follow; boxes pushed mostly out of
the image become ignored). Photometric: per-channel gain, brightness,
contrast, gamma, Gaussian noise, occasional blur. Deterministic for a given
generator. Pure numpy + OpenCV.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from sorter.entities import ImageArray

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation (0 disables it)."""

    flip_lr: float = 0.5
    flip_ud: float = 0.5
    zoom: float = 0.15
    shift: float = 0.1
    gain: float = 0.12
    brightness: float = 20.0
    contrast: float = 0.2
    gamma: float = 0.25
    noise_sigma_max: float = 6.0
    blur_p: float = 0.15
    min_kept_fraction: float = 0.5


NO_AUGMENT = AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5)

_NOISE_BANK_SIGMA = 20.0


@functools.cache
def _noise_bank() -> ImageArray:
    """A fixed bank of Gaussian noise (grey 128 +- 20) cropped at random offsets: cheaper than fresh draws per image."""
    bank = np.random.default_rng(20240611).standard_normal((1088, 1088, 3), dtype=np.float32)
    out: ImageArray = np.clip(128.0 + _NOISE_BANK_SIGMA * bank, 0, 255).astype(np.uint8)
    return out


def augment(
    image: ImageArray, boxes: F32, ignore: npt.NDArray[np.bool_], cfg: AugmentConfig, rng: np.random.Generator, pad_value: int
) -> tuple[ImageArray, F32, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Augment one letterboxed image.

    Args:
        image: HxWx3 uint8 (network-input size).
        boxes: ``(N, 4)`` boxes in the image's pixels.
        ignore: ``(N,)`` ignore flags.
        cfg: strengths.
        rng: random generator.
        pad_value: grey level for uncovered areas.

    Returns:
        ``(image, boxes, ignore, keep)``: ``keep`` is the ``(N,)`` mask of input
        objects still (partly) visible; the other outputs are already filtered by it.
    """
    h, w = image.shape[:2]
    b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    ig = np.asarray(ignore, bool).reshape(-1).copy()
    # --- geometry: x' = a*x + tx, y' = d*y + ty (axis-aligned, so boxes stay exact)
    s = 1.0 + float(rng.uniform(-cfg.zoom, cfg.zoom)) if cfg.zoom > 0 else 1.0
    a = d = s
    tx = (w - s * w) / 2.0 + float(rng.uniform(-cfg.shift, cfg.shift)) * w
    ty = (h - s * h) / 2.0 + float(rng.uniform(-cfg.shift, cfg.shift)) * h
    if rng.random() < cfg.flip_lr:
        a, tx = -a, w - tx
    if rng.random() < cfg.flip_ud:
        d, ty = -d, h - ty
    out = image
    if (a, d, tx, ty) != (1.0, 1.0, 0.0, 0.0):
        m = np.array([[a, 0.0, tx], [0.0, d, ty]], np.float64)
        out = cv2.warpAffine(  # type: ignore[assignment]
            image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(pad_value,) * 3
        )
        xs = b[:, [0, 2]] * a + tx
        ys = b[:, [1, 3]] * d + ty
        b = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1).astype(np.float32)
    area0 = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    np.clip(b[:, 0::2], 0, w, out=b[:, 0::2])
    np.clip(b[:, 1::2], 0, h, out=b[:, 1::2])
    area1 = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    frac = np.where(area0 > 0, area1 / np.maximum(area0, 1e-6), 0.0)
    keep = (frac > 0.05) & (b[:, 2] - b[:, 0] >= 1) & (b[:, 3] - b[:, 1] >= 1)
    ig = ig | (frac < cfg.min_kept_fraction)
    # --- photometry: one per-channel lookup table (gamma, contrast about mid-grey, brightness, gain), then noise
    if cfg.gain or cfg.brightness or cfg.contrast or cfg.gamma:
        g = float(np.exp(rng.uniform(-cfg.gamma, cfg.gamma))) if cfg.gamma else 1.0
        gains = 1.0 + rng.uniform(-cfg.gain, cfg.gain, 3) if cfg.gain else np.ones(3)
        c = 1.0 + float(rng.uniform(-cfg.contrast, cfg.contrast)) if cfg.contrast else 1.0
        bright = float(rng.uniform(-cfg.brightness, cfg.brightness)) if cfg.brightness else 0.0
        x = 255.0 * (np.arange(256, dtype=np.float64) / 255.0) ** g
        x = (x - 128.0) * c + 128.0 + bright
        lut = np.clip(x[:, None] * gains[None, :], 0, 255).astype(np.uint8).reshape(256, 1, 3)
        out = np.asarray(cv2.LUT(np.ascontiguousarray(out), lut), np.uint8)
    if cfg.noise_sigma_max:
        sigma = float(rng.uniform(0.0, cfg.noise_sigma_max))
        bank = _noise_bank()
        oy = int(rng.integers(0, bank.shape[0] - h + 1)) if bank.shape[0] >= h else 0
        ox = int(rng.integers(0, bank.shape[1] - w + 1)) if bank.shape[1] >= w else 0
        crop = bank[oy : oy + h, ox : ox + w]
        if crop.shape[:2] == (h, w):
            beta = sigma / _NOISE_BANK_SIGMA
            out = np.asarray(cv2.addWeighted(out, 1.0, crop, beta, -128.0 * beta), np.uint8)
    if cfg.blur_p and rng.random() < cfg.blur_p:
        k = int(rng.choice([3, 5]))
        out = np.asarray(cv2.GaussianBlur(out, (k, k), 0), np.uint8)
    return out, b[keep], ig[keep], keep
