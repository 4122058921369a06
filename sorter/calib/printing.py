"""Calibration sheets as files that print at exact scale: PNG with its DPI recorded, or a one-page PDF.

The PDF page is exactly the sheet's physical size, so "actual size / 100 %"
printing reproduces the squares in millimetres; the PNG carries a ``pHYs``
chunk with the resolution. Both are written with the standard library (zlib),
no PDF or imaging package needed. The sheet carries a 100 mm scale bar to check
the print with a ruler, and arrows saying how to lay it on the belt.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sorter.calib.boards import BoardImage, BoardSpec, render_board
from sorter.errors import CalibrationError

U8 = npt.NDArray[np.uint8]
MM_PER_INCH = 25.4


def exact_px_per_mm(spec: BoardSpec, dpi: float) -> float:
    """A resolution near ``dpi`` at which one square (or marker pitch) is a whole number of pixels."""
    unit = spec.square_mm if spec.type != "aruco_grid" else spec.marker_mm + spec.separation_mm
    px = max(1, round(unit * dpi / MM_PER_INCH))
    return px / unit


def sheet_image(spec: BoardSpec, dpi: float = 200.0, margin_mm: float = 20.0) -> BoardImage:
    """The board with a white margin holding its description, a 100 mm scale bar and laying arrows."""
    import cv2

    if margin_mm < 12.0:
        raise CalibrationError(f"margin {margin_mm:g} mm is too small for the labels; use at least 12 mm")
    ppm = exact_px_per_mm(spec, dpi)
    board = render_board(spec, ppm, margin_mm)
    img = board.image.copy()
    h, w = img.shape
    m = round(board.margin_mm * ppm)
    scale = 0.12 * ppm  # Hershey font size giving ~3 mm tall capitals
    thick = max(1, round(0.25 * ppm))
    text = f"sorter calibration sheet: {spec.describe()}. Print at 100 % (actual size)."
    cv2.putText(img, text, (m, int(m * 0.55)), cv2.FONT_HERSHEY_SIMPLEX, scale, 0, thick, cv2.LINE_AA)
    # scale bar, 100 mm, in the bottom margin
    y = h - int(m * 0.45)
    x0 = m
    x1 = m + round(100.0 * ppm)
    cv2.line(img, (x0, y), (x1, y), 0, max(1, round(0.5 * ppm)))
    for x in (x0, x1):
        cv2.line(img, (x, y - round(2 * ppm)), (x, y + round(2 * ppm)), 0, max(1, round(0.3 * ppm)))
    cv2.putText(
        img, "100 mm: check with a ruler", (x1 + round(4 * ppm), y + round(1.5 * ppm)), cv2.FONT_HERSHEY_SIMPLEX, scale, 0, thick
    )
    note = "lay it printed side up, arrow y pointing the way the belt travels, arrow x across the belt"
    cv2.putText(img, note, (x1 + round(70 * ppm), y + round(1.5 * ppm)), cv2.FONT_HERSHEY_SIMPLEX, scale, 0, thick)
    arrow_y = int(m * 0.8)
    cv2.arrowedLine(img, (m, arrow_y), (m + round(60 * ppm), arrow_y), 0, thick, tipLength=0.06)
    arrow_x = int(m * 0.5)
    cv2.arrowedLine(img, (arrow_x, m), (arrow_x, m + round(60 * ppm)), 0, thick, tipLength=0.06)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "x", (m + round(63 * ppm), arrow_y + round(1.5 * ppm)), font, scale, 0, thick, cv2.LINE_AA)
    cv2.putText(img, "y", (arrow_x - round(1.5 * ppm), m + round(68 * ppm)), font, scale, 0, thick, cv2.LINE_AA)
    if w < x1:
        raise CalibrationError("the sheet is narrower than the 100 mm scale bar; use a bigger board")
    return BoardImage(img, ppm, board.margin_mm)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(gray: U8, px_per_mm: float) -> bytes:
    """8-bit grey PNG with the physical resolution recorded (pixels per metre)."""
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[r].tobytes() for r in range(h))
    ppm_m = round(px_per_mm * 1000.0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + _png_chunk(b"pHYs", struct.pack(">IIB", ppm_m, ppm_m, 1))
        + _png_chunk(b"IDAT", zlib.compress(raw, 6))
        + _png_chunk(b"IEND", b"")
    )


def pdf_bytes(gray: U8, px_per_mm: float) -> bytes:
    """A one-page PDF whose page is exactly the image's physical size (points = mm * 72 / 25.4)."""
    h, w = gray.shape
    w_pt = w / px_per_mm * 72.0 / MM_PER_INCH
    h_pt = h / px_per_mm * 72.0 / MM_PER_INCH
    data = zlib.compress(np.ascontiguousarray(gray).tobytes(), 6)
    content = f"q {w_pt:.4f} 0 0 {h_pt:.4f} 0 0 cm /Im0 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w_pt:.4f} {h_pt:.4f}] "
            "/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>"
        ).encode(),
        (
            f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray "
            f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(data)} >>\nstream\n"
        ).encode()
        + data
        + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write_sheet(path: str | Path, spec: BoardSpec, dpi: float = 200.0, margin_mm: float = 20.0) -> BoardImage:
    """Write a printable sheet; the format follows the suffix (``.pdf`` or ``.png``).

    Returns:
        The sheet image written (with its scale).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".pdf", ".png"):
        raise CalibrationError(f"sheet file '{p}' must end in .pdf or .png")
    sheet = sheet_image(spec, dpi, margin_mm)
    payload = pdf_bytes(sheet.image, sheet.px_per_mm) if suffix == ".pdf" else png_bytes(sheet.image, sheet.px_per_mm)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(payload)
    return sheet
