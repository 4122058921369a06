"""Opening OpenCV captures with a hard deadline, and what to check when a device will not open."""

from __future__ import annotations

import threading
from collections.abc import Callable

import cv2

from sorter.errors import DeviceNotConnectedError

HINTS: dict[str, str] = {
    "opencv": "check that the camera is plugged in and listed by `v4l2-ctl --list-devices` (or `ls /dev/video*`), "
    "that no other process holds it, and that this user is in the 'video' group",
    "video": "check that the file exists, is readable, and that `ffprobe FILE` can decode it",
    "rtsp": "check the URL, port and credentials, and that the camera answers (e.g. `ffprobe -rtsp_transport tcp URL`)",
    "gstreamer": "check the pipeline with `gst-launch-1.0` and that it ends in `appsink`",
}



def open_with_timeout(factory: Callable[[], cv2.VideoCapture], timeout_s: float, what: str) -> cv2.VideoCapture:
    """Run a possibly blocking ``VideoCapture`` constructor with a hard deadline (seconds).

    Backends' own timeouts do not cover every stall (DNS, a half-open TCP peer,
    a GStreamer pipeline that never prerolls), and a stuck open must never hang
    start-up or ``close()``. On timeout the opener thread is abandoned and
    releases whatever it eventually opens.
    """
    lock = threading.Lock()
    result: list[cv2.VideoCapture | BaseException] = []
    abandoned = [False]

    def work() -> None:
        try:
            out: cv2.VideoCapture | BaseException = factory()
        except Exception as exc:  # cv2.error from a backend
            out = exc
        with lock:
            if abandoned[0]:
                if isinstance(out, cv2.VideoCapture):
                    out.release()
                return
            result.append(out)

    opener = threading.Thread(target=work, name="capture-open", daemon=True)
    opener.start()
    opener.join(timeout_s)
    with lock:
        if not result:
            abandoned[0] = True
            raise DeviceNotConnectedError(f"{what}: opening did not finish within {timeout_s:.1f} s")
    out = result[0]
    if isinstance(out, BaseException):
        raise DeviceNotConnectedError(f"{what}: OpenCV raised {out!r}") from out
    return out
