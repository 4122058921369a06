"""A tiny drawn-shapes dataset: fast, learnable, for tests and smoke runs of the trainer.

Each class has its own shape and colour family (rectangles, ellipses,
triangles...) on a noisy belt-coloured background. Not a model of real waste:
it only exercises the training and evaluation code quickly.
"""

from __future__ import annotations

import cv2
import numpy as np

from sorter.entities import MATERIAL_CLASSES
from sorter.train.samples import Sample, make_sample

_COLOURS = [(40, 40, 200), (230, 230, 230), (190, 190, 195), (70, 120, 160), (235, 215, 200), (175, 125, 60)]


class ToyShapes:
    """``n`` images of ``size`` with 1-6 shapes each; image ``i`` depends only on ``(seed, i)``."""

    def __init__(
        self, n: int, size: tuple[int, int] = (320, 180), seed: int = 0, class_names: tuple[str, ...] = MATERIAL_CLASSES
    ) -> None:
        self.n = n
        self.size = size
        self.seed = seed
        self.class_names = class_names

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.n:
            raise IndexError(index)
        rng = np.random.default_rng((self.seed, index))
        w, h = self.size
        img = np.empty((h, w, 3), np.uint8)
        img[...] = rng.integers(30, 120, 3, dtype=np.uint8)
        img = np.asarray(cv2.add(img, rng.integers(0, 12, (h, w, 3), dtype=np.uint8)), np.uint8)
        boxes, classes = [], []
        for _ in range(int(rng.integers(1, 7))):
            c = int(rng.integers(len(self.class_names)))
            bw = int(rng.integers(w // 14, w // 5))
            bh = int(rng.integers(h // 10, h // 3))
            x0 = int(rng.integers(0, w - bw))
            y0 = int(rng.integers(0, h - bh))
            col = tuple(int(v) for v in np.clip(np.array(_COLOURS[c % len(_COLOURS)]) + rng.integers(-15, 16, 3), 0, 255))
            kind = c % 3
            if kind == 0:
                cv2.rectangle(img, (x0, y0), (x0 + bw - 1, y0 + bh - 1), col, -1)
            elif kind == 1:
                cv2.ellipse(img, (x0 + bw // 2, y0 + bh // 2), (bw // 2, bh // 2), 0, 0, 360, col, -1)
            else:
                pts = np.array([[x0, y0 + bh - 1], [x0 + bw - 1, y0 + bh - 1], [x0 + bw // 2, y0]], np.int32)
                cv2.fillPoly(img, [pts], col)
            if c >= 3:  # second colour family: a stripe
                cv2.line(img, (x0 + bw // 4, y0 + bh // 2), (x0 + 3 * bw // 4, y0 + bh // 2), (20, 20, 20), 2)
            boxes.append((x0, y0, x0 + bw, y0 + bh))
            classes.append(c)
        return make_sample(img, boxes, classes, None, index + 1)
