"""When a calibration board is not found, or found too small: why, and what to do (hints for the technician).

A board missing from an image is explained (a uniform image, a chessboard with other
inner-corner counts, markers of another board or dictionary); a chessboard found as a
smaller grid inside a bigger printed one is detected, so it never calibrates with the
wrong geometry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sorter.calib.boards import U8, BoardDetection, BoardSpec, board_marker_ids, detect_markers, to_gray


def _cv2() -> Any:
    import cv2  # lazily, as in sorter.calib.boards

    return cv2


def diagnose_missing_board(image: U8, spec: BoardSpec) -> str:
    """Say why ``detect_board`` found nothing, and what to do about it."""
    gray = to_gray(image)
    if float(gray.std()) < 4.0:
        return "the image is almost uniform (lens cap on, lights off, or camera not exposing); check the camera and lighting"
    if spec.type == "chessboard":
        cv2 = _cv2()
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
        for dc, dr in ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, -1), (2, 0), (0, 2)):
            size = (spec.cols + dc, spec.rows + dr)
            if min(size) >= 2 and cv2.findChessboardCorners(gray, size, flags=flags)[0]:
                return (
                    f"no {spec.cols}x{spec.rows} chessboard, but a {size[0]}x{size[1]} one is visible: "
                    f"count the INNER corners (where four squares meet) and pass --cols {size[0]} --rows {size[1]}"
                )
        return (
            f"no {spec.cols}x{spec.rows} chessboard found: make sure the whole board is in view, flat, well lit and sharp, "
            "and that --cols/--rows count the inner corners"
        )
    _corners, ids = detect_markers(gray, spec.dictionary)
    if len(ids):
        known = board_marker_ids(spec)
        foreign = sorted(set(ids.tolist()) - set(known.tolist()))
        if foreign:
            return (
                f"markers {foreign[:6]} are not on a {spec.cols}x{spec.rows} board (ids {known.min()}..{known.max()}); "
                "check --cols/--rows against the printed sheet"
            )
        return f"only {len(ids)} marker(s) seen; bring more of the sheet into view"
    # The predefined 4x4..7x7 dictionaries of one family are prefixes of its 1000-marker one: search that,
    # then name the smallest dictionary holding every id seen.
    best_name, best_ids = "", np.zeros(0, np.int32)
    small = gray
    if max(gray.shape) > 800:  # a quicker search on a smaller copy; markers stay large enough to read
        cv2 = _cv2()
        f = 800.0 / max(gray.shape)
        small = cv2.resize(gray, (round(gray.shape[1] * f), round(gray.shape[0] * f)), interpolation=cv2.INTER_AREA)
    families = ("DICT_4X4_1000", "DICT_5X5_1000", "DICT_6X6_1000", "DICT_7X7_1000", "DICT_ARUCO_ORIGINAL")
    for name in (*families, "DICT_APRILTAG_16h5", "DICT_APRILTAG_25h9", "DICT_APRILTAG_36h11"):
        ids = detect_markers(small, name, refine=False)[1]
        if len(ids) > len(best_ids):
            best_name, best_ids = name, ids
    if len(best_ids) >= 2:
        if best_name.endswith("_1000"):
            family = best_name[: -len("_1000")]
            n_markers = next(n for n in (50, 100, 250, 1000) if int(best_ids.max()) < n)
            best_name = f"{family}_{n_markers}"
        if best_name != spec.dictionary:
            return (
                f"no markers from {spec.dictionary}, but {len(best_ids)} markers from {best_name} (or a larger dictionary of "
                f"that family) are visible: the sheet was printed with another dictionary; pass --dictionary {best_name} "
                "or print the right sheet"
            )
    return (
        f"no {spec.dictionary} markers found: make sure the sheet is in view, flat, lit without glare and in focus, "
        "and that it is the sheet printed by 'sorter calibrate sheet'"
    )


def larger_chessboard(image: U8, detection: BoardDetection, spec: BoardSpec) -> tuple[int, int] | None:
    """The size actually printed when the chessboard has more inner corners than ``spec`` says, else ``None``.

    OpenCV finds a smaller grid inside a bigger board without complaint (a 7x6
    grid in a 9x6 board), which would calibrate with the wrong geometry
    assumptions left unchecked; so grow the grid one row or column at a time
    while OpenCV still finds it. The search runs on the board's surroundings
    only (four squares around the detected grid), scaled to about 30 pixels per
    square, to stay fast on large images.
    """
    cv2 = _cv2()
    gray = to_gray(image)
    pts = detection.image_points_px
    grid = pts.reshape(spec.rows, spec.cols, 2)
    spacing = float(np.median(np.linalg.norm(np.diff(grid, axis=1), axis=2)))
    pad = 4.0 * spacing
    h, w = gray.shape
    x0, y0 = max(0, int(pts[:, 0].min() - pad)), max(0, int(pts[:, 1].min() - pad))
    x1, y1 = min(w, int(pts[:, 0].max() + pad) + 1), min(h, int(pts[:, 1].max() + pad) + 1)
    crop = gray[y0:y1, x0:x1]
    scale = min(1.0, 30.0 / max(spacing, 1e-6))
    if scale < 1.0:
        crop = cv2.resize(
            crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))), interpolation=cv2.INTER_AREA
        )
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    cols, rows = spec.cols, spec.rows
    grown = True
    while grown and cols + rows < 80:
        grown = False
        for c, r in ((cols + 1, rows), (cols, rows + 1)):
            if cv2.findChessboardCorners(crop, (c, r), flags=flags)[0]:
                cols, rows, grown = c, r, True
                break
    return None if (cols, rows) == (spec.cols, spec.rows) else (cols, rows)
