"""Annotated live frame for the service page: detections, tracks, decisions, and where the ejection line is."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import cv2
import numpy as np

from sorter.entities import MATERIAL_CLASSES, Detections, ImageArray, Track
from sorter.geometry import CameraModel

_GREEN = (60, 200, 60)
_CYAN = (220, 200, 40)
_RED = (40, 40, 230)
_WHITE = (255, 255, 255)


def draw_overlay(
    image: ImageArray,
    camera: CameraModel,
    detections: Detections,
    tracks: Iterable[Track],
    s_capture_mm: float,
    actions: Mapping[int, str],
    y_eject_mm: float | None,
    banner: str,
) -> ImageArray:
    """A copy of ``image`` with boxes (detections), track centres and ids (belt frame projected back), and a banner.

    Args:
        image: the frame (BGR); not modified.
        camera: the calibrated mount, to project belt positions back to pixels.
        detections: this frame's detections, in pixels.
        tracks: live tracks; a track's belt position at this frame is ``u_mm + s_capture_mm``.
        s_capture_mm: the frame's odometer.
        actions: track id -> decided action (``eject`` tracks are drawn red).
        y_eject_mm: the ejection line (drawn when inside the view, else named in the banner).
        banner: one line of status text.
    """
    out = image.copy()
    for (x1, y1, x2, y2), s, c in zip(detections.boxes_px, detections.scores, detections.class_ids, strict=True):
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), _GREEN, 2)
        cv2.putText(out, f"{MATERIAL_CLASSES[int(c)]} {float(s):.2f}", (int(x1), max(12, int(y1) - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, _GREEN, 1, cv2.LINE_AA)
    tracks = list(tracks)
    if tracks:
        pts = np.array([[t.x_mm, t.u_mm + s_capture_mm] for t in tracks], np.float64)
        px = camera.belt_to_pixel(pts)
        for t, (u, v) in zip(tracks, px, strict=True):
            colour = _RED if actions.get(t.track_id) in ("eject", "pick") else _CYAN
            cv2.circle(out, (int(u), int(v)), 5, colour, -1)
            cv2.putText(out, f"#{t.track_id}", (int(u) + 6, int(v) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    h, w = out.shape[:2]
    if y_eject_mm is not None:
        x0, x1, _y0, y1 = camera.view_extent_mm()
        if y_eject_mm <= y1:
            line = camera.belt_to_pixel(np.array([[x0, y_eject_mm], [x1, y_eject_mm]], np.float64))
            cv2.line(out, tuple(int(a) for a in line[0]), tuple(int(a) for a in line[1]), _RED, 2)
        else:
            banner = f"{banner} | ejection line {y_eject_mm - y1:.0f} mm past the view"
    cv2.rectangle(out, (0, h - 22), (w, h), (0, 0, 0), -1)
    cv2.putText(out, banner, (6, h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _WHITE, 1, cv2.LINE_AA)
    return out


def encode_jpeg(image: ImageArray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())
