"""Batches for training: augmentation and targets per image, stacked into torch tensors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sorter.detect.spec import ModelSpec
from sorter.train.augment import AugmentConfig, augment
from sorter.train.packed import PackedSet
from sorter.train.targets import build_targets


def make_batch(
    data: PackedSet, indices: Sequence[int], spec: ModelSpec, aug: AugmentConfig, seed: int, epoch: int
) -> dict[str, torch.Tensor]:
    """Augmented images and targets for ``indices``.

    Image ``i`` of epoch ``e`` is augmented with the generator ``(seed, e, i)``,
    so a run is reproducible and a resumed run sees the same data.

    Returns:
        ``images (B,3,H,W)`` (channels-last memory, values as :func:`sorter.detect.preprocess.to_tensor`),
        ``heat (B,C,h,w)``, ``heat_mask (B,1,h,w)``, ``box (B,4,h,w)``, ``box_weight (B,1,h,w)``.
    """
    b = len(indices)
    images = np.empty((b, spec.input_h_px, spec.input_w_px, 3), np.uint8)
    heat = np.empty((b, spec.num_classes, spec.heatmap_h, spec.heatmap_w), np.float32)
    mask = np.empty((b, 1, spec.heatmap_h, spec.heatmap_w), np.float32)
    box = np.empty((b, 4, spec.heatmap_h, spec.heatmap_w), np.float32)
    weight = np.empty((b, 1, spec.heatmap_h, spec.heatmap_w), np.float32)
    for k, i in enumerate(indices):
        rng = np.random.default_rng((seed, epoch, int(i)))
        boxes, classes, ignore = data.annotations(int(i))
        img, bx, ig, keep = augment(data.images[int(i)], boxes, ignore, aug, rng, spec.pad_value)
        images[k] = img
        t = build_targets(bx, classes[keep], ig, spec.num_classes, spec.heatmap_w, spec.heatmap_h, spec.out_stride)
        heat[k], mask[k, 0], box[k], weight[k, 0] = t.heat, t.heat_mask, t.box, t.box_weight
    return {
        # NHWC bytes viewed as NCHW: a channels-last float tensor, the fast layout for CPU convolutions
        "images": torch.from_numpy(images).permute(0, 3, 1, 2).float().mul_(1.0 / 255.0),
        "heat": torch.from_numpy(heat),
        "heat_mask": torch.from_numpy(mask),
        "box": torch.from_numpy(box),
        "box_weight": torch.from_numpy(weight),
    }
