"""Registry of real frame sources, keyed by ``camera.type``: built-ins below, plugins through entry points.

Every factory has the signature ``(cfg: CameraConfig, clock, odometer, options: SourceOptions) -> FrameSource``
and is imported only when its type is used (GenICam cameras import Aravis only then). ``sim`` is not here:
the simulated camera renders the simulated plant's world, so the plant (``sorter.sim.plant``) builds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sorter.capture.base import FrameSource, Odometer, SourceOptions
from sorter.errors import ConfigError
from sorter.plugins import check_built, load, resolve

if TYPE_CHECKING:
    from sorter.clock import Clock
    from sorter.config import CameraConfig

#: camera.type -> ``module:function`` of its factory
SOURCES: dict[str, str] = {
    "opencv": "sorter.capture.opencv_source:create",
    "video": "sorter.capture.opencv_source:create",
    "rtsp": "sorter.capture.opencv_source:create",
    "gstreamer": "sorter.capture.opencv_source:create",
    "images": "sorter.capture.folder_source:create",
    "aravis": "sorter.capture.aravis_source:create",
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
    ref = resolve("camera", cfg.type, SOURCES, "camera.type", wired_elsewhere=("sim",))
    source = load(ref)(cfg, clock, odometer, SourceOptions(realtime, loop, wait_for_device))
    check_built(ref, source, FrameSource)
    return source  # type: ignore[no-any-return]
