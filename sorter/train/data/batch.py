"""A batch of frames on disk: the unit that is collected, labelled, exported, imported and built into datasets.

Layout::

    batch/
      batch.json     format, class names, where the frames came from, one entry per frame
      images/*.png   the frames, lossless (so content hashes and pixel boxes survive every round trip)

Each frame entry holds its capture metadata (source, recording, frame index,
``t_capture_ns``, ``s_capture_mm``), why it was chosen, the running model's
predictions (pre-annotations) and, once labelled, its labels. ``labels``
is ``None`` for a frame nobody has labelled, ``[]`` for a frame known to hold
nothing (an empty-belt capture: a hard negative), else the list of boxes.
Boxes are ``(x1, y1, x2, y2)`` in image pixels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sorter.errors import ConfigError

FORMAT = 1
BATCH_FILE = "batch.json"
IMAGES_DIR = "images"


@dataclass(frozen=True)
class Box:
    """One labelled or predicted object.

    Attributes:
        box_px: ``(x1, y1, x2, y2)`` in image pixels.
        label: class name.
        score: model confidence (predictions only).
        track_id: the tracker's id of the object (predictions only; 0 when untracked).
        attrs: free attributes set when labelling (``state: crumpled``...).
    """

    box_px: tuple[float, float, float, float]
    label: str
    score: float | None = None
    track_id: int = 0
    attrs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"box_px": [round(float(v), 3) for v in self.box_px], "label": self.label}
        if self.score is not None:
            d["score"] = round(float(self.score), 5)
        if self.track_id:
            d["track_id"] = int(self.track_id)
        if self.attrs:
            d["attrs"] = dict(self.attrs)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Box:
        x1, y1, x2, y2 = (float(v) for v in d["box_px"])
        score = d.get("score")
        return Box(
            (x1, y1, x2, y2),
            str(d["label"]),
            None if score is None else float(score),
            int(d.get("track_id", 0)),
            {str(k): str(v) for k, v in (d.get("attrs") or {}).items()},
        )


@dataclass(frozen=True)
class FrameEntry:
    """One frame of a batch.

    Attributes:
        file: image path relative to the batch folder (``images/...png``).
        width_px: image width.
        height_px: image height.
        source: where the frame came from (a video file, a camera URI, a recording folder).
        recording: id of the continuous capture it belongs to (splits keep a recording's moments apart).
        frame_index: index at the source.
        t_capture_ns: capture time stamp (monotonic, the source's clock).
        s_capture_mm: belt odometer at capture.
        reasons: why it was chosen (``near_threshold``, ``class_flip``, ``empty_belt``...).
        predictions: the model's detections at collection (pre-annotations).
        labels: ``None`` unlabelled; ``[]`` known empty (hard negative); else the labelled boxes.
        tags: image-level conditions (``light``...), for slices and balance reports.
    """

    file: str
    width_px: int
    height_px: int
    source: str = ""
    recording: str = ""
    frame_index: int = 0
    t_capture_ns: int = 0
    s_capture_mm: float = 0.0
    reasons: tuple[str, ...] = ()
    predictions: tuple[Box, ...] = ()
    labels: tuple[Box, ...] | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        d["predictions"] = [b.to_dict() for b in self.predictions]
        d["labels"] = None if self.labels is None else [b.to_dict() for b in self.labels]
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> FrameEntry:
        labels = d.get("labels")
        return FrameEntry(
            file=str(d["file"]),
            width_px=int(d["width_px"]),
            height_px=int(d["height_px"]),
            source=str(d.get("source", "")),
            recording=str(d.get("recording", "")),
            frame_index=int(d.get("frame_index", 0)),
            t_capture_ns=int(d.get("t_capture_ns", 0)),
            s_capture_mm=float(d.get("s_capture_mm", 0.0)),
            reasons=tuple(str(r) for r in d.get("reasons", ())),
            predictions=tuple(Box.from_dict(b) for b in d.get("predictions", ())),
            labels=None if labels is None else tuple(Box.from_dict(b) for b in labels),
            tags={str(k): str(v) for k, v in (d.get("tags") or {}).items()},
        )


@dataclass(frozen=True)
class Batch:
    """A batch folder's content.

    Attributes:
        root: the batch folder.
        class_names: the classes labels and predictions use.
        frames: the frames, in capture order.
        info: free provenance (model file and hash, config, sampler settings, command).
    """

    root: Path
    class_names: tuple[str, ...]
    frames: tuple[FrameEntry, ...]
    info: dict[str, Any] = field(default_factory=dict)

    def with_frames(self, frames: Sequence[FrameEntry]) -> Batch:
        return replace(self, frames=tuple(frames))

    def image_path(self, entry: FrameEntry) -> Path:
        return self.root / entry.file


def read_batch(root: str | Path) -> Batch:
    """Read ``root/batch.json``.

    Raises:
        ConfigError: when the folder is not a batch, naming the file and the fix.
    """
    r = Path(root)
    path = r / BATCH_FILE
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"'{r}' is not a frame batch: {BATCH_FILE} is missing (make one with 'sorter collect')") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"'{path}' is not valid JSON ({e}); restore it from the collection") from None
    if d.get("format") != FORMAT:
        raise ConfigError(f"'{path}' has format {d.get('format')!r}; this sorter reads batch format {FORMAT}")
    return Batch(r, tuple(d["class_names"]), tuple(FrameEntry.from_dict(f) for f in d["frames"]), dict(d.get("info", {})))


def write_batch(batch: Batch) -> Path:
    """Write ``batch.json`` atomically; returns its path."""
    batch.root.mkdir(parents=True, exist_ok=True)
    path = batch.root / BATCH_FILE
    tmp = path.with_suffix(".json.tmp")
    doc = {
        "format": FORMAT,
        "class_names": list(batch.class_names),
        "info": batch.info,
        "frames": [f.to_dict() for f in batch.frames],
    }
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
