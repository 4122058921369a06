"""Explicit registry of real frame sources, keyed by ``camera.type``.

``sim`` is not here: the simulated camera renders from the simulator's world,
which only the runtime owns, so the runtime wires it. GenICam cameras (``aravis``)
import Aravis only when built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sorter.capture.base import FrameSource, Odometer
from sorter.capture.folder_source import ImageFolderSource
from sorter.capture.opencv_source import OpenCvSource
from sorter.errors import ConfigError

if TYPE_CHECKING:
    from sorter.clock import Clock
    from sorter.config import CameraConfig


def _opencv(cfg: CameraConfig, clock: Clock, odometer: Odometer | None, realtime: bool, loop: bool, wait: bool) -> FrameSource:
    return OpenCvSource(cfg, clock, odometer, realtime=realtime, loop=loop, wait_for_device=wait)


def _images(cfg: CameraConfig, clock: Clock, odometer: Odometer | None, realtime: bool, loop: bool, wait: bool) -> FrameSource:
    return ImageFolderSource(cfg, clock, odometer, realtime=realtime, loop=loop)


def _aravis(cfg: CameraConfig, clock: Clock, odometer: Odometer | None, realtime: bool, loop: bool, wait: bool) -> FrameSource:
    from sorter.capture.aravis_source import AravisSource

    return AravisSource(cfg, clock, odometer, wait_for_device=wait)


#: camera.type -> factory ``(cfg, clock, odometer, realtime, loop, wait_for_device) -> FrameSource``.
SOURCES: dict[str, Callable[[CameraConfig, Clock, Odometer | None, bool, bool, bool], FrameSource]] = {
    "opencv": _opencv,
    "video": _opencv,
    "rtsp": _opencv,
    "gstreamer": _opencv,
    "images": _images,
    "aravis": _aravis,
}


def create_frame_source(
    cfg: CameraConfig,
    clock: Clock,
    odometer: Odometer | None = None,
    *,
    realtime: bool = True,
    loop: bool = False,
    wait_for_device: bool = False,
) -> FrameSource:
    """Build the frame source for ``camera.type`` (not started; call ``start()``).

    Args:
        cfg: the ``camera`` section of the config.
        clock: monotonic clock stamping ``t_capture_ns``.
        odometer: belt odometer ``odometer(t_ns) -> s_mm`` (default: 0 mm); called from the capture thread.
        realtime: files and image folders are paced at their frame rate; False delivers every frame (replay).
        loop: files and image folders restart at the end.
        wait_for_device: live devices absent at start are retried instead of failing ``start()``.

    Raises:
        ConfigError: ``camera.type`` is ``sim`` or unknown, or the type's required settings are missing.
    """
    if cfg.type == "sim":
        raise ConfigError(
            "camera.type = 'sim' is wired by the runtime (the simulated camera renders the simulator's world), "
            "not by sorter.capture.registry; call create_frame_source only for real sources"
        )
    factory = SOURCES.get(cfg.type)
    if factory is None:
        raise ConfigError(f"camera.type = {cfg.type!r} is unknown; valid: sim, {', '.join(SOURCES)}")
    return factory(cfg, clock, odometer, realtime, loop, wait_for_device)
