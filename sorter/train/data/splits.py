"""Train / validation / test splits that keep one object's frames on one side. Pure.

``time``: within each recording, the test set is one contiguous block of capture time (``test_fraction`` of
the recording's labelled span, placed at ``test_at``: 0 the start, 1 the end), validation the block before it;
frames closer than ``guard_s`` to a block boundary go nowhere, so an object seen across a boundary (it stays in
view for a few seconds) never has frames on both sides. Set ``guard_s`` to at least the time an object stays in
view. ``recording``: whole recordings go to test (then validation) until their share of frames is reached, in
an order drawn from ``seed`` (or exactly the ``test_recordings`` named), so no moment of a test recording was
ever trained on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

Split = Literal["train", "val", "test", "guard"]


@dataclass(frozen=True)
class SplitConfig:
    """How to split (see the module docstring)."""

    mode: Literal["time", "recording"] = "time"
    test_fraction: float = 0.25
    val_fraction: float = 0.0
    test_at: float = 1.0
    guard_s: float = 2.0
    seed: int = 0
    test_recordings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (
            not 0.0 < self.test_fraction < 1.0
            or not 0.0 <= self.val_fraction < 1.0
            or self.test_fraction + self.val_fraction >= 1.0
        ):
            raise ValueError(
                f"test fraction {self.test_fraction} and val fraction {self.val_fraction} must be in (0, 1) and sum below 1"
            )
        if not 0.0 <= self.test_at <= 1.0:
            raise ValueError(f"test_at = {self.test_at} must be between 0 (start) and 1 (end)")
        if self.guard_s < 0:
            raise ValueError(f"guard_s = {self.guard_s} must be >= 0")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def split_frames(recordings: Sequence[str], t_capture_ns: Sequence[int], cfg: SplitConfig) -> list[Split]:
    """The split of each frame, given its recording id and capture stamp."""
    n = len(recordings)
    out: list[Split] = ["train"] * n
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(recordings):
        groups[r].append(i)
    if cfg.mode == "recording" and cfg.test_recordings:
        return ["test" if r in cfg.test_recordings else "train" for r in recordings]
    if cfg.mode == "recording":
        order = sorted(groups)
        rng = np.random.default_rng(cfg.seed)
        order = [order[k] for k in rng.permutation(len(order))]
        test_n, val_n = cfg.test_fraction * n, cfg.val_fraction * n
        taken_test = taken_val = 0
        for r in order:
            idx = groups[r]
            if taken_test < test_n:
                label: Split = "test"
                taken_test += len(idx)
            elif taken_val < val_n:
                label = "val"
                taken_val += len(idx)
            else:
                label = "train"
            for i in idx:
                out[i] = label
        return out
    guard_ns = cfg.guard_s * 1e9
    for idx in groups.values():
        t = np.array([t_capture_ns[i] for i in idx], np.float64)
        t0, t1 = float(t.min()), float(t.max())
        span = max(t1 - t0, 1.0)
        test_len, val_len = cfg.test_fraction * span, cfg.val_fraction * span
        free = span - test_len - val_len
        v0 = t0 + cfg.test_at * free
        a, b = v0 + val_len, v0 + val_len + test_len
        for i, ti in zip(idx, t, strict=True):
            if a <= ti <= b:
                label = "test"
            elif val_len > 0 and v0 <= ti < a:
                label = "val"
            else:
                label = "train"
            edges = [a, b] + ([v0] if val_len > 0 else [])
            if label != "test" and any(abs(ti - e) < guard_ns for e in edges if t0 < e < t1):
                near_test = abs(ti - a) < guard_ns or abs(ti - b) < guard_ns
                if label == "train" or near_test:
                    label = "guard"
            out[i] = label
    return out
