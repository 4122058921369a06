"""Annotated live frame for the console: detections by class, track ids, decisions, and where the ejection line is.

Drawn on the web publisher's thread a few times per second (never on the loop),
in the same class colours as the console's belt map.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import cv2
import numpy as np

from sorter.entities import MATERIAL_CLASSES, Detections, ImageArray, Track
from sorter.geometry import CameraModel

#: BGR colours per class, the console's palette (console.js CLASS_COLOURS).
CLASS_BGR = {
    "pet_bottle": (247, 195, 79), "hdpe_container": (241, 239, 236), "alu_can": (174, 164, 144),
    "cardboard": (90, 145, 200), "paper": (118, 241, 255), "film": (216, 147, 206),
}
_SHOT = (77, 72, 229)  # red: an object that will be shot at / picked
_TRACK = (60, 200, 240)  # amber: a track with no shot
_WHITE = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(img: ImageArray, text: str, x: int, y: int, colour: tuple[int, int, int], scale: float = 0.55) -> None:
    """``text`` on a dark box with its bottom-left corner at (x, y), kept inside the image."""
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    x = int(min(max(0, x), img.shape[1] - w - 4))
    y = int(min(max(h + 4, y), img.shape[0] - base - 2))
    cv2.rectangle(img, (x, y - h - 4), (x + w + 4, y + base), (20, 20, 20), -1)
    cv2.putText(img, text, (x + 2, y - 2), _FONT, scale, colour, 1, cv2.LINE_AA)


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
    """A copy of ``image`` with boxes (detections), track centres with ids and classes, and a status banner.

    Args:
        image: the frame (BGR); not modified.
        camera: the calibrated mount, to project belt positions back to pixels.
        detections: this frame's detections, in pixels.
        tracks: live tracks; a track's belt position at this frame is ``u_mm + s_capture_mm``.
        s_capture_mm: the frame's odometer.
        actions: track id -> decided action (``eject``/``pick`` tracks are drawn red).
        y_eject_mm: the ejection line (drawn when inside the view, else named in the banner).
        banner: one line of status text.
    """
    out = image.copy()
    for (x1, y1, x2, y2), s, c in zip(detections.boxes_px, detections.scores, detections.class_ids, strict=True):
        name = MATERIAL_CLASSES[int(c)]
        colour = CLASS_BGR.get(name, _WHITE)
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), colour, 2)
        _label(out, f"{name} {float(s):.2f}", int(x1), int(y1) - 2, colour)
    tracks = list(tracks)
    if tracks:
        pts = np.array([[t.x_mm, t.u_mm + s_capture_mm] for t in tracks], np.float64)
        px = camera.belt_to_pixel(pts)
        for t, (u, v) in zip(tracks, px, strict=True):
            action = actions.get(t.track_id, "")
            shot = action in ("eject", "pick")
            colour = _SHOT if shot else _TRACK
            cv2.circle(out, (int(u), int(v)), 7, colour, -1)
            cv2.circle(out, (int(u), int(v)), 7, (20, 20, 20), 1)
            text = f"#{t.track_id} {MATERIAL_CLASSES[t.class_id]}" + (f" {action}" if action else "")
            _label(out, text, int(u) + 10, int(v) + 6, colour)
    h, w = out.shape[:2]
    if y_eject_mm is not None:
        x0, x1, _y0, y1 = camera.view_extent_mm()
        if y_eject_mm <= y1:
            line = camera.belt_to_pixel(np.array([[x0, y_eject_mm], [x1, y_eject_mm]], np.float64))
            cv2.line(out, tuple(int(a) for a in line[0]), tuple(int(a) for a in line[1]), _SHOT, 3)
        else:
            banner = f"{banner} | ejection line {y_eject_mm - y1:.0f} mm past the view"
    bar = max(26, h // 24)
    cv2.rectangle(out, (0, h - bar), (w, h), (0, 0, 0), -1)
    cv2.putText(out, banner, (8, h - bar // 3), _FONT, bar / 40, _WHITE, 1, cv2.LINE_AA)
    return out


def encode_jpeg(image: ImageArray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())
