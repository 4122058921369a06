"""Frames for the data engine from any source: a ``sorter record`` recording, a video file, an image folder, a camera.

Files are read in full (every frame, unpaced) and stamped with their media
time (``frame_index / camera.fps``), so sampling caps and time splits mean
the same on a file as on the live line. Live cameras keep their capture stamps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sorter.entities import Detections, Frame
from sorter.errors import ConfigError

if TYPE_CHECKING:
    from sorter.config import Config

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]


def recording_frames(rec_dir: Path) -> Iterator[Frame]:
    """Every frame of a recording with its recorded stamps."""
    from sorter.capture.recording import RecordingSource

    src = RecordingSource(rec_dir)
    src.start()
    try:
        while (f := src.latest(0.0)) is not None:
            yield f
    finally:
        src.close()


def config_frames(
    cfg: Config,
    max_duration_s: float | None = None,
    odometer: Callable[[int], float] | None = None,
    window_s: tuple[float | None, float | None] = (None, None),
) -> Iterator[Frame]:
    """Frames of ``camera.*``: files and folders every frame (media time, within ``window_s``), live cameras until
    ``max_duration_s``."""
    from sorter.capture.registry import create_frame_source
    from sorter.clock import MonotonicClock

    cam = cfg.camera
    if cam.type == "sim":
        raise ConfigError(
            "camera.type = 'sim' has no real frames to collect; record the simulated line first "
            "('sorter record DIR') and pass --recording DIR, or set camera.type to video/images/opencv/..."
        )
    is_file = cam.type in ("video", "images")
    src: Any = create_frame_source(cam, MonotonicClock(), odometer, realtime=not is_file, loop=False)
    src.start()
    t0: int | None = None
    misses = 0
    try:
        while True:
            f = src.latest(0.5)
            if f is None:
                if getattr(src, "ended", False) or src.health().state in ("ended", "closed"):
                    return
                misses += 1
                if is_file and misses > 20:
                    return
                continue
            misses = 0
            if is_file:
                t = round(f.frame_index * 1e9 / cam.fps)
                f = Frame(f.image, t, odometer(t) if odometer else f.s_capture_mm, f.frame_index, f.camera_id)
                if window_s[0] is not None and t < window_s[0] * 1e9:
                    continue
                if window_s[1] is not None and t > window_s[1] * 1e9:
                    return
            t0 = f.t_capture_ns if t0 is None else t0
            if max_duration_s is not None and f.t_capture_ns - t0 > max_duration_s * 1e9:
                return
            yield f
    finally:
        src.close()


def belt_tracker_fn(cfg: Config) -> Callable[[Frame, Detections], I64]:
    """Track ids from the belt tracker (needs a calibrated camera: ``camera.calibration_file``)."""
    from sorter.entities import BeltMeasurements
    from sorter.geometry import boxes_to_belt
    from sorter.runtime.params import tracker_params
    from sorter.runtime.plant import camera_model
    from sorter.track import BeltTracker

    camera = camera_model(cfg)
    tracker = BeltTracker(tracker_params(cfg, camera))

    def track(frame: Frame, det: Detections) -> I64:
        x, y, length, width = boxes_to_belt(camera, det.boxes_px.astype(np.float64))
        meas = BeltMeasurements(
            frame.t_capture_ns, frame.s_capture_mm, x, y, length, width, det.scores.astype(np.float64), det.class_ids
        )
        return np.asarray(tracker.update(meas).meas_track_ids, np.int64)

    return track


def pixel_linker_fn() -> Callable[[Frame, Detections], I64]:
    """Track ids from box overlap in consecutive frames (uncalibrated cameras)."""
    from sorter.train.data.sampler import PixelLinker

    linker = PixelLinker()

    def track(frame: Frame, det: Detections) -> I64:
        ids, _ended = linker.update(det.boxes_px)
        return ids

    return track
