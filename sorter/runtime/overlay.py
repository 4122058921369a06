"""Annotated live frame for the console: detections by class, track ids, decisions, and where the ejection line is.

The line's process works out what to draw (:func:`overlay_items`: a few
projections, no pixels touched) a few times per second, off the loop; the web
process draws it and encodes the JPEG (:func:`draw_items`, :func:`encode_jpeg`),
in the same class colours as the console's belt map.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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


def overlay_items(
    camera: CameraModel,
    detections: Detections,
    tracks: Iterable[Track],
    s_capture_mm: float,
    actions: Mapping[int, str],
    y_eject_mm: float | None,
    banner: str,
    view_extent_mm: tuple[float, float, float, float] | None = None,
) -> dict[str, Any]:
    """What to draw on a frame, in pixels, as plain data (cheap: the line's side works this out, the web process draws).

    Args:
        camera: the calibrated mount, to project belt positions back to pixels.
        detections: this frame's detections, in pixels.
        tracks: live tracks; a track's belt position at this frame is ``u_mm + s_capture_mm``.
        s_capture_mm: the frame's odometer.
        actions: track id -> decided action (``eject``/``pick`` tracks are drawn red).
        y_eject_mm: the ejection line (drawn when inside the view, else named in the banner).
        banner: one line of status text.
        view_extent_mm: ``camera.view_extent_mm()``, if already known.
    """
    boxes = [
        ([float(v) for v in box], f"{MATERIAL_CLASSES[int(c)]} {float(sc):.2f}", CLASS_BGR.get(MATERIAL_CLASSES[int(c)], _WHITE))
        for box, sc, c in zip(detections.boxes_px, detections.scores, detections.class_ids, strict=True)
    ]
    points = []
    tracks = list(tracks)
    if tracks:
        px = camera.belt_to_pixel(np.array([[t.x_mm, t.u_mm + s_capture_mm] for t in tracks], np.float64))
        for t, (u, v) in zip(tracks, px, strict=True):
            action = actions.get(t.track_id, "")
            text = f"#{t.track_id} {MATERIAL_CLASSES[t.class_id]}" + (f" {action}" if action else "")
            points.append(([float(u), float(v)], text, _SHOT if action in ("eject", "pick") else _TRACK))
    line = None
    if y_eject_mm is not None:
        x0, x1, _y0, y1 = view_extent_mm if view_extent_mm is not None else camera.view_extent_mm()
        if y_eject_mm <= y1:
            ends = camera.belt_to_pixel(np.array([[x0, y_eject_mm], [x1, y_eject_mm]], np.float64))
            line = [[float(a) for a in ends[0]], [float(a) for a in ends[1]]]
        else:
            banner = f"{banner} | ejection line {y_eject_mm - y1:.0f} mm past the view"
    return {"boxes": boxes, "points": points, "eject_line": line, "banner": banner}


def draw_items(image: ImageArray, items: Mapping[str, Any]) -> ImageArray:
    """A copy of ``image`` with the :func:`overlay_items` drawn: boxes by class, track ids and classes, a banner."""
    out = image.copy()
    for (x1, y1, x2, y2), text, colour in items["boxes"]:
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), tuple(colour), 2)
        _label(out, text, int(x1), int(y1) - 2, tuple(colour))
    for (u, v), text, colour in items["points"]:
        cv2.circle(out, (int(u), int(v)), 7, tuple(colour), -1)
        cv2.circle(out, (int(u), int(v)), 7, (20, 20, 20), 1)
        _label(out, text, int(u) + 10, int(v) + 6, tuple(colour))
    if items.get("eject_line") is not None:
        (ax, ay), (bx, by) = items["eject_line"]
        cv2.line(out, (int(ax), int(ay)), (int(bx), int(by)), _SHOT, 3)
    h, w = out.shape[:2]
    bar = max(26, h // 24)
    cv2.rectangle(out, (0, h - bar), (w, h), (0, 0, 0), -1)
    cv2.putText(out, str(items["banner"]), (8, h - bar // 3), _FONT, bar / 40, _WHITE, 1, cv2.LINE_AA)
    return out


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
    """A copy of ``image`` with boxes (detections), track centres with ids and classes, and a status banner."""
    return draw_items(image, overlay_items(camera, detections, tracks, s_capture_mm, actions, y_eject_mm, banner))


def encode_jpeg(image: ImageArray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())
