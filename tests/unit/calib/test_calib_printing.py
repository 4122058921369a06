"""Printable sheets: PNG and PDF at exact physical scale, still detectable, and the preview drawings."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from sorter.calib.boards import BoardSpec, detect_board
from sorter.calib.preview import belt_preview, draw_belt_grid
from sorter.calib.printing import exact_px_per_mm, write_sheet
from sorter.geometry import CameraModel

SHEET = BoardSpec("charuco", 6, 4, 50.0, 35.0, dictionary="DICT_5X5_100")


def test_png_sheet_decodes_detects_and_records_its_scale(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path / "s.png", SHEET, dpi=150.0, margin_mm=15.0)
    data = (tmp_path / "s.png").read_bytes()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(img, sheet.image)
    i = data.index(b"pHYs")
    ppm_x, ppm_y, unit = struct.unpack(">IIB", data[i + 4 : i + 13])
    assert unit == 1 and ppm_x == ppm_y == round(sheet.px_per_mm * 1000)
    det = detect_board(np.repeat(img[:, :, None], 3, axis=2), SHEET)
    assert det is not None and len(det) == (SHEET.cols - 1) * (SHEET.rows - 1)
    # a square is a whole number of pixels, and the detected corners sit where the millimetres say
    assert abs(SHEET.square_mm * sheet.px_per_mm - round(SHEET.square_mm * sheet.px_per_mm)) < 1e-9
    assert np.abs(det.image_points_px - sheet.board_to_image_px(det.object_points_mm[:, :2])).max() < 0.5


def test_pdf_page_is_the_sheet_at_actual_size(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path / "s.pdf", SHEET, dpi=100.0, margin_mm=15.0)
    data = (tmp_path / "s.pdf").read_bytes()
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    box = re.search(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", data)
    assert box is not None
    w_mm = float(box.group(1)) * 25.4 / 72.0
    h_mm = float(box.group(2)) * 25.4 / 72.0
    pw, ph = SHEET.pattern_size_mm()
    assert abs(w_mm - (pw + 30.0)) < 0.2 and abs(h_mm - (ph + 30.0)) < 0.2
    m = re.search(rb"/Length (\d+) >>\nstream\n", data)
    assert m is not None
    start = m.end()
    pixels = zlib.decompress(data[start : start + int(m.group(1))])
    assert pixels == sheet.image.tobytes()
    xref = int(re.findall(rb"startxref\n(\d+)", data)[-1])
    assert data[xref : xref + 4] == b"xref"


def test_exact_scale_rounds_to_whole_pixels_per_square() -> None:
    ppm = exact_px_per_mm(SHEET, 300.0)
    assert abs(ppm - 300.0 / 25.4) < 0.5 / SHEET.square_mm * 2
    assert float(SHEET.square_mm * ppm).is_integer()


def test_belt_grid_lands_where_the_camera_model_projects() -> None:
    cam = CameraModel.looking_down(640, 360, 60.0, 1000.0, 500.0, dist=(-0.1, 0.0, 0.0, 0.0, 0.0))
    blank = np.zeros((360, 640, 3), np.uint8)
    drawn = draw_belt_grid(blank, cam, step_mm=100.0)
    for x_mm, y_mm in [(300.0, -100.0), (500.0, 37.0), (700.0, 200.0)]:
        u, v = np.rint(cam.belt_to_pixel(np.array([[x_mm, y_mm]]))[0]).astype(int)
        assert drawn[v - 1 : v + 2, u - 1 : u + 2].max() > 0  # the x = const line passes here
    assert drawn[180, 320].max() > 0  # the x = 500 and y = 0 lines cross at the image centre


def test_belt_preview_marks_points_and_verdict() -> None:
    cam = CameraModel.looking_down(640, 360, 60.0, 1000.0, 500.0)
    img = np.full((360, 640, 3), 90, np.uint8)
    pts = np.array([[400.0, 0.0], [500.0, 0.0], [600.0, 0.0], [500.0, 100.0]])
    from sorter.calib.boards import BoardDetection

    det = BoardDetection(cam.belt_to_pixel(pts), np.column_stack([pts, np.zeros(4)]), np.arange(4, dtype=np.int32))
    out = belt_preview(img, det, cam, pts, ["residual 0.1 mm"], passed=True)
    u, v = np.rint(det.image_points_px[3]).astype(int)
    assert tuple(out[v, u]) != (90, 90, 90)
    assert out[5:30, 5:60, 1].max() > 150  # the green PASS in the banner
