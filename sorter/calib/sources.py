"""Where calibration images come from: image folders, recorded frames with encoder counts, a live camera.

I/O only; every source returns plain images (BGR uint8) with names, times and
counts, and says clearly what is wrong when it cannot. The simulated line's views
(boards in front of the virtual camera, the sheet on the virtual belt) are the
simulator's: ``sorter.sim.calib_views``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sorter.errors import CalibrationError, DeviceNotConnectedError

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_image(path: str | Path) -> U8:
    """Read an image file as BGR, or say why not."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise CalibrationError(f"image '{p}' does not exist; check the path")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise CalibrationError(f"'{p}' is not an image OpenCV can read (use PNG or JPEG)")
    return np.asarray(img, dtype=np.uint8)


def image_files(directory: str | Path) -> list[Path]:
    """Image files of a folder, or matching a glob pattern such as ``photos/left*.jpg``, sorted by name."""
    d = Path(directory)
    if not d.is_dir() and any(c in str(directory) for c in "*?["):
        parent = Path(*[p for p in d.parts[: next(i for i, p in enumerate(d.parts) if any(c in p for c in "*?["))]]) or Path(".")
        pattern = str(d.relative_to(parent)) if parent != Path(".") else str(d)
        matched = sorted(f for f in parent.glob(pattern) if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not matched:
            raise CalibrationError(f"no images match '{directory}'; check the pattern (quote it so the shell does not expand it)")
        return matched
    if not d.is_dir():
        raise CalibrationError(f"image folder '{d}' does not exist; pass the folder holding the calibration photos")
    files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not files:
        raise CalibrationError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in '{d}'; copy the calibration photos there")
    return files


def images_in(directory: str | Path) -> Iterator[tuple[str, U8]]:
    """``(file name, image)`` for every image of a folder."""
    for f in image_files(directory):
        yield f.name, read_image(f)


@dataclass(frozen=True)
class RecordedFrame:
    """A frame of a recording with its exposure time and encoder count."""

    name: str
    image: U8
    t_ns: int
    count: int


def recorded_frames(directory: str | Path) -> Iterator[RecordedFrame]:
    """Frames listed in ``DIR/frames.csv`` (columns ``file,t_ns,count``), in file order."""
    d = Path(directory)
    index = d / "frames.csv"
    if not index.is_file():
        raise CalibrationError(
            f"'{index}' is missing: a speed recording needs a frames.csv with columns file,t_ns,count "
            "(exposure time in ns and the encoder count latched at exposure)"
        )
    with index.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "t_ns", "count"} <= set(rows[0]):
        raise CalibrationError(f"'{index}' needs a header line 'file,t_ns,count' and one row per frame")
    for i, row in enumerate(rows, start=2):
        try:
            t_ns, count = int(row["t_ns"]), int(row["count"])
        except ValueError:
            raise CalibrationError(f"'{index}' line {i}: t_ns and count must be integers, got {row!r}") from None
        yield RecordedFrame(row["file"], read_image(d / row["file"]), t_ns, count)


class LiveCamera:
    """A camera opened with OpenCV (device index, file, RTSP URL or GStreamer pipeline).

    Args:
        uri: ``"0"`` for the first video device, or any string ``cv2.VideoCapture`` accepts.
        width_px: requested width (0: camera default).
        height_px: requested height.
    """

    def __init__(self, uri: str, width_px: int = 0, height_px: int = 0) -> None:
        import cv2

        self.uri = uri
        source: Any = int(uri) if uri.isdigit() else uri
        self._cap = cv2.VideoCapture(source)
        if not self._cap.isOpened():
            raise DeviceNotConnectedError(
                f"camera '{uri}' cannot be opened; check the cable, the device index/URL and permissions"
            )
        if width_px and height_px:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width_px)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height_px)

    def grab(self) -> U8:
        """The next frame (a few are skipped first so the image is fresh)."""
        for _ in range(3):
            self._cap.grab()
        ok, img = self._cap.read()
        if not ok or img is None:
            raise DeviceNotConnectedError(f"camera '{self.uri}' delivered no frame; check it is streaming")
        return np.asarray(img, dtype=np.uint8)

    def close(self) -> None:
        self._cap.release()
