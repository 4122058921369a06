"""The image strip of the miss taxonomy: a few views of each of the worst cases, one row per case.

Each row starts with the case in words (cause, class, object, track, detail),
followed by up to four views of the object across the camera view: the frame
crop (grey when the run rendered no pixels, as with the oracle detector), the
object's true box in green, and every detection near it with its class, score
and track id (in a colour per track).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sorter.entities import MATERIAL_CLASSES

#: drawn size of one view, px (views are stored at 96 px and scaled up)
VIEW_PX = 192
LABEL_W_PX = 360
GAP_PX = 4

Box = tuple[float, float, float, float]


class PanelLike(Protocol):
    """One stored view (``sorter.runtime.explain_recorder.Panel``)."""

    @property
    def frame_index(self) -> int: ...
    @property
    def image(self) -> npt.NDArray[np.uint8] | None: ...
    @property
    def size_px(self) -> tuple[int, int]: ...
    @property
    def truth_box(self) -> Box: ...
    @property
    def detections(self) -> tuple[tuple[Box, int, float, int], ...]: ...
    @property
    def visible_fraction(self) -> float: ...


class CaseLike(Protocol):
    """One attribution (``sorter.sim.explain_history.Attribution``)."""

    @property
    def object_id(self) -> int: ...
    @property
    def class_id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def cause(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def track_id(self) -> int: ...
    @property
    def first_frame(self) -> int: ...


def _colour(track_id: int) -> tuple[int, int, int]:
    if track_id <= 0:
        return (200, 200, 200)
    rng = np.random.default_rng(track_id)
    c = rng.integers(60, 256, 3)
    return (int(c[0]), int(c[1]), int(c[2]))


def _name(class_id: int) -> str:
    return MATERIAL_CLASSES[class_id] if 0 <= class_id < len(MATERIAL_CLASSES) else str(class_id)


def _view(panel: PanelLike) -> npt.NDArray[np.uint8]:
    import cv2

    w, h = panel.size_px
    f = VIEW_PX / max(w, h)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    if panel.image is not None:
        img = cv2.resize(panel.image, size, interpolation=cv2.INTER_NEAREST)
    else:
        img = np.full((size[1], size[0], 3), 90, np.uint8)
    out = np.zeros((VIEW_PX, VIEW_PX, 3), np.uint8)
    out[: img.shape[0], : img.shape[1]] = img

    def pts(b: Box) -> tuple[tuple[int, int], tuple[int, int]]:
        return (round(b[0] * f), round(b[1] * f)), (round(b[2] * f), round(b[3] * f))

    p1, p2 = pts(panel.truth_box)
    cv2.rectangle(out, p1, p2, (0, 220, 0), 2)
    for box, cls, score, tid in panel.detections:
        q1, q2 = pts(box)
        col = _colour(tid)
        cv2.rectangle(out, q1, q2, col, 1)
        label = f"{_name(cls)[:5]} {score:.2f} #{tid}"
        cv2.putText(out, label, (q1[0] + 2, max(10, q1[1] + 11)), cv2.FONT_HERSHEY_PLAIN, 0.8, col, 1, cv2.LINE_AA)
    cv2.putText(
        out,
        f"f{panel.frame_index} vis {panel.visible_fraction:.0%}",
        (3, VIEW_PX - 6),
        cv2.FONT_HERSHEY_PLAIN,
        0.9,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return out


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    cur = ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    if cur:
        lines.append(cur)
    return lines


def _label(case: CaseLike) -> npt.NDArray[np.uint8]:
    import cv2

    out = np.full((VIEW_PX, LABEL_W_PX, 3), 30, np.uint8)
    head = [
        case.cause.replace("_", " "),
        f"{case.kind.replace('_', ' ')}: {_name(case.class_id)}",
        f"object {case.object_id}, track {case.track_id or '-'}, frame {case.first_frame}",
    ]
    lines = head + _wrap(case.detail, 44)
    for i, text in enumerate(lines[:11]):
        col = (80, 200, 255) if i == 0 else (230, 230, 230)
        cv2.putText(out, text, (6, 18 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, col, 1, cv2.LINE_AA)
    return out


def render_strip(cases: Sequence[CaseLike], views: Mapping[int, Sequence[PanelLike]], per_case: int = 4) -> npt.NDArray[np.uint8]:
    """The strip as a BGR image: one row per case, its label then up to ``per_case`` views."""
    width = LABEL_W_PX + per_case * (VIEW_PX + GAP_PX)
    rows: list[npt.NDArray[np.uint8]] = []
    for case in cases:
        row = np.zeros((VIEW_PX, width, 3), np.uint8)
        row[:, :LABEL_W_PX] = _label(case)
        for k, panel in enumerate(list(views.get(case.object_id, ()))[:per_case]):
            x = LABEL_W_PX + GAP_PX + k * (VIEW_PX + GAP_PX)
            row[:, x : x + VIEW_PX] = _view(panel)
        rows.append(row)
        rows.append(np.zeros((GAP_PX, width, 3), np.uint8))
    if not rows:
        import cv2

        empty = np.full((VIEW_PX // 2, width, 3), 30, np.uint8)
        cv2.putText(empty, "no sorting failures", (10, 50), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (230, 230, 230), 1, cv2.LINE_AA)
        return empty
    return np.concatenate(rows[:-1], axis=0)


def write_strip(path: Path, cases: Sequence[CaseLike], views: Mapping[int, Sequence[PanelLike]]) -> Path:
    """Draw the strip and write it as a PNG at ``path`` (folders created)."""
    import cv2

    from sorter.errors import SorterError

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), render_strip(cases, views)):
        raise SorterError(f"cannot write the explain strip {path}; check that the folder is writable and the name ends in .png")
    return path
