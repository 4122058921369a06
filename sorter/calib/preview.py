"""Annotated preview images of every calibration step, so a person can see what was measured.

Detected corners and markers, residual arrows (magnified), the belt grid as
the calibration maps it back into the image, and a banner with PASS/FAIL and
the key numbers. Drawing only; the numbers come from the fitting modules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sorter.calib.boards import BoardDetection
from sorter.errors import CalibrationError
from sorter.geometry import CameraModel

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

GREEN = (60, 200, 60)
RED = (40, 40, 230)
YELLOW = (0, 220, 255)
CYAN = (230, 200, 0)
WHITE = (255, 255, 255)
MAGENTA = (255, 0, 255)


def _bgr(image: U8) -> U8:
    import cv2

    if image.ndim == 2:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    return image.copy()


def _pt(p: F64) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def draw_detection(image: U8, detection: BoardDetection) -> U8:
    """Detected points (green dots) and marker outlines with ids (cyan)."""
    import cv2

    out = _bgr(image)
    for quad, mid in zip(detection.marker_corners_px, detection.marker_ids, strict=True):
        cv2.polylines(out, [np.rint(quad).astype(np.int32)], True, CYAN, 1, cv2.LINE_AA)
        cv2.putText(out, str(int(mid)), _pt(quad.mean(axis=0)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, CYAN, 1, cv2.LINE_AA)
    for p in detection.image_points_px:
        cv2.circle(out, _pt(p), 3, GREEN, -1, cv2.LINE_AA)
    return out


def draw_residual_arrows(image: U8, from_px: F64, to_px: F64, magnify: float, limit_px: float) -> U8:
    """Arrows from each measured point towards where the model puts it, ``magnify`` times longer.

    Arrows whose true length exceeds ``limit_px`` are red, others yellow.
    """
    import cv2

    out = image.copy()
    for a, b in zip(np.asarray(from_px), np.asarray(to_px), strict=True):
        d = b - a
        colour = RED if float(np.hypot(*d)) > limit_px else YELLOW
        cv2.arrowedLine(out, _pt(a), _pt(a + magnify * d), colour, 1, cv2.LINE_AA, tipLength=0.3)
    return out


def draw_belt_grid(image: U8, camera: CameraModel, step_mm: float = 100.0) -> U8:
    """Belt-coordinate grid lines (every ``step_mm``) drawn through the camera model, lens distortion included."""
    import cv2

    out = image.copy()
    x0, x1, y0, y1 = camera.view_extent_mm()
    xs = np.arange(math.floor(x0 / step_mm) * step_mm, x1 + step_mm, step_mm)
    ys = np.arange(math.floor(y0 / step_mm) * step_mm, y1 + step_mm, step_mm)
    dense_y = np.linspace(y0, y1, 60)
    dense_x = np.linspace(x0, x1, 60)
    for x in xs:
        px = camera.belt_to_pixel(np.column_stack([np.full(len(dense_y), x), dense_y]))
        cv2.polylines(out, [np.rint(px).astype(np.int32)], False, MAGENTA, 1, cv2.LINE_AA)
        lab = camera.belt_to_pixel(np.array([[x, (y0 + y1) / 2.0]]))[0]
        cv2.putText(out, f"x{x:.0f}", _pt(lab + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35, MAGENTA, 1, cv2.LINE_AA)
    for y in ys:
        px = camera.belt_to_pixel(np.column_stack([dense_x, np.full(len(dense_x), y)]))
        cv2.polylines(out, [np.rint(px).astype(np.int32)], False, MAGENTA, 1, cv2.LINE_AA)
        lab = camera.belt_to_pixel(np.array([[(x0 + x1) / 2.0, y]]))[0]
        cv2.putText(out, f"y{y:.0f}", _pt(lab + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35, MAGENTA, 1, cv2.LINE_AA)
    return out


def draw_banner(image: U8, passed: bool, lines: Sequence[str]) -> U8:
    """A dark banner at the top: PASS/FAIL in colour, then one line per item."""
    import cv2

    out = image.copy()
    h = 22 * (len(lines) + 1) + 8
    overlay = out.copy()
    cv2.rectangle(overlay, (0, 0), (out.shape[1], h), (0, 0, 0), -1)
    out = np.asarray(cv2.addWeighted(overlay, 0.6, out, 0.4, 0), dtype=np.uint8)
    cv2.putText(
        out, "PASS" if passed else "FAIL", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, GREEN if passed else RED, 2, cv2.LINE_AA
    )
    for i, text in enumerate(lines):
        cv2.putText(out, text[:160], (8, 44 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, WHITE, 1, cv2.LINE_AA)
    return out


def intrinsics_view_preview(image: U8, detection: BoardDetection, k: F64, dist: F64, title: str, limit_px: float = 1.5) -> U8:
    """One calibration view: detected corners, reprojection residual arrows (x20), its RMS (PASS when within ``limit_px``)."""
    import cv2

    obj = detection.object_points_mm.astype(np.float64)
    img = detection.image_points_px.astype(np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, dist)
    out = draw_detection(image, detection)
    rms = float("nan")
    if ok:
        proj, _ = cv2.projectPoints(obj, rvec, tvec, k, dist)
        proj = np.asarray(proj, dtype=np.float64).reshape(-1, 2)
        rms = float(np.sqrt(np.mean(np.sum((proj - img) ** 2, axis=1))))
        out = draw_residual_arrows(out, img, proj, magnify=20.0, limit_px=1.0)
    return draw_banner(out, bool(ok and rms <= limit_px), [f"{title}: {len(detection)} points, RMS {rms:.3f} px (arrows x20)"])


def coverage_preview(width_px: int, height_px: int, points_px: Sequence[F64], hints: Sequence[str], passed: bool) -> U8:
    """Where the board has been: every view's outline on a blank frame, with the coverage hints."""
    import cv2

    out = np.full((height_px, width_px, 3), 40, np.uint8)
    for i, pts in enumerate(points_px):
        if len(pts) >= 3:
            hull = cv2.convexHull(np.asarray(pts, dtype=np.float32)).astype(np.int32)
            colour = tuple(int(c) for c in cv2.applyColorMap(np.array([[i * 37 % 255]], np.uint8), cv2.COLORMAP_JET)[0, 0])
            cv2.polylines(out, [hull], True, colour, 2, cv2.LINE_AA)
    return draw_banner(out, passed, [f"board outlines of {len(points_px)} views", *hints])


def belt_preview(
    image: U8, detection: BoardDetection, camera: CameraModel, belt_points_mm: F64, lines: Sequence[str], passed: bool
) -> U8:
    """Sheet detection, residual arrows (x20, towards where the model maps each point) and the belt grid."""
    out = draw_belt_grid(draw_detection(image, detection), camera)
    model_px = camera.belt_to_pixel(belt_points_mm)
    out = draw_residual_arrows(out, detection.image_points_px, model_px, magnify=20.0, limit_px=1.0)
    return draw_banner(out, passed, lines)


def chart(
    values: F64, labels: Sequence[str], title: str, unit: str, errors: F64 | None = None, size: tuple[int, int] = (900, 360)
) -> U8:
    """A small bar chart (e.g. latency per valve) with optional error bars."""
    import cv2

    w, h = size
    out = np.full((h, w, 3), 250, np.uint8)
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n == 0:
        return out
    top = float(np.nanmax(np.abs(v) + (np.nan_to_num(errors) if errors is not None else 0.0))) or 1.0
    base_y, span = h - 40, h - 80
    bar_w = max(2, (w - 80) // n)
    cv2.putText(out, title, (10, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.line(out, (60, base_y), (w - 10, base_y), (0, 0, 0), 1)
    for i, val in enumerate(v):
        x = 60 + i * bar_w
        y = base_y - round(span * max(0.0, float(val)) / top)
        cv2.rectangle(out, (x + 1, y), (x + bar_w - 2, base_y), (180, 120, 40), -1)
        if errors is not None and not math.isnan(float(errors[i])):
            e = round(span * float(errors[i]) / top)
            cx = x + bar_w // 2
            cv2.line(out, (cx, y - e), (cx, y + e), (0, 0, 0), 1)
        if n <= 40:
            cv2.putText(out, labels[i], (x + 1, h - 22), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(out, f"{top:.2f} {unit}", (4, base_y - span), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def scatter(x: F64, y: F64, title: str, x_label: str, y_label: str, size: tuple[int, int] = (900, 360)) -> U8:
    """A scatter plot (e.g. along-belt residual against encoder count)."""
    import cv2

    w, h = size
    out = np.full((h, w, 3), 250, np.uint8)
    cv2.putText(out, title, (10, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(xs) == 0:
        return out
    x0, x1 = float(xs.min()), float(xs.max())
    lim = float(np.max(np.abs(ys))) or 1.0
    left, right, top_y, bottom = 70, w - 10, 40, h - 40
    mid = (top_y + bottom) // 2
    cv2.line(out, (left, mid), (right, mid), (0, 0, 0), 1)
    for a, b in zip(xs, ys, strict=True):
        px = left + (right - left) * ((a - x0) / (x1 - x0) if x1 > x0 else 0.5)
        py = mid - (bottom - top_y) / 2 * (b / lim)
        cv2.circle(out, (round(px), round(py)), 2, (180, 80, 20), -1)
    cv2.putText(out, f"+{lim:.2f} {y_label}", (4, top_y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(out, f"-{lim:.2f}", (4, bottom), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(out, x_label, (left, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def save_preview(path: str | Path, image: U8) -> Path:
    """Write a PNG (creating its directory)."""
    import cv2

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), image):
        raise CalibrationError(f"could not write preview image '{p}'; check the folder is writable")
    return p
