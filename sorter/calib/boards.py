"""Calibration targets: chessboard, ChArUco and ArUco-grid sheets, their detection and their image.

Board coordinates are millimetres on the printed sheet, origin at the top-left
corner of the pattern (the outer corner of the first square or marker), ``x``
to the right along a row, ``y`` down the sheet, ``z = 0``. For a chessboard the
detected corners are numbered by OpenCV from whichever end it finds first, so
chessboards serve only for intrinsics; ChArUco and ArUco grids carry ids and
also fix a belt pose.

Sizes follow OpenCV's conventions, which differ per type:

* ``chessboard``: ``cols x rows`` *inner corners* (a board of 10 x 7 squares has 9 x 6).
* ``charuco``: ``cols x rows`` *squares*; markers sit in the white squares.
* ``aruco_grid``: ``cols x rows`` *markers* of ``marker_mm`` with ``separation_mm`` gaps.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sorter.errors import CalibrationError

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
U8 = npt.NDArray[np.uint8]

BoardType = Literal["chessboard", "charuco", "aruco_grid"]
BOARD_TYPES: tuple[str, ...] = ("chessboard", "charuco", "aruco_grid")

#: Predefined OpenCV dictionaries tried when a sheet's markers are not found.
DICTIONARY_NAMES: tuple[str, ...] = (
    "DICT_4X4_50",
    "DICT_4X4_100",
    "DICT_4X4_250",
    "DICT_4X4_1000",
    "DICT_5X5_50",
    "DICT_5X5_100",
    "DICT_5X5_250",
    "DICT_5X5_1000",
    "DICT_6X6_50",
    "DICT_6X6_100",
    "DICT_6X6_250",
    "DICT_6X6_1000",
    "DICT_7X7_50",
    "DICT_7X7_100",
    "DICT_7X7_250",
    "DICT_7X7_1000",
    "DICT_ARUCO_ORIGINAL",
    "DICT_APRILTAG_16h5",
    "DICT_APRILTAG_25h9",
    "DICT_APRILTAG_36h10",
    "DICT_APRILTAG_36h11",
)


@dataclass(frozen=True)
class BoardSpec:
    """Geometry of a printed calibration target.

    Attributes:
        type: ``chessboard``, ``charuco`` or ``aruco_grid``.
        cols: inner corners (chessboard), squares (charuco) or markers (aruco_grid) along a row.
        rows: the same down a column.
        square_mm: side of one chessboard/ChArUco square; unused for ``aruco_grid``.
        marker_mm: side of one ArUco marker (charuco, aruco_grid).
        separation_mm: gap between markers (aruco_grid).
        dictionary: OpenCV predefined dictionary name, e.g. ``DICT_6X6_250``.
        legacy_pattern: ChArUco boards with an even row count printed by OpenCV < 4.6.
    """

    type: BoardType
    cols: int
    rows: int
    square_mm: float = 0.0
    marker_mm: float = 0.0
    separation_mm: float = 0.0
    dictionary: str = "DICT_6X6_250"
    legacy_pattern: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.type not in BOARD_TYPES:
            problems.append(f"board type {self.type!r} is unknown; use one of {', '.join(BOARD_TYPES)}")
        if self.cols < 2 or self.rows < 2:
            problems.append(f"board size {self.cols}x{self.rows} is too small; count at least 2 in each direction")
        if self.type in ("chessboard", "charuco") and self.square_mm <= 0:
            problems.append(f"{self.type}: square size must be > 0 mm (measure one printed square and pass --square-mm)")
        if self.type in ("charuco", "aruco_grid") and self.marker_mm <= 0:
            problems.append(f"{self.type}: marker size must be > 0 mm (measure one printed marker and pass --marker-mm)")
        if self.type == "charuco" and self.marker_mm >= self.square_mm:
            problems.append(f"charuco: marker {self.marker_mm:g} mm must be smaller than the square {self.square_mm:g} mm")
        if self.type == "aruco_grid" and self.separation_mm <= 0:
            problems.append("aruco_grid: the gap between markers must be > 0 mm (pass --separation-mm)")
        if self.type != "chessboard" and self.dictionary not in DICTIONARY_NAMES:
            problems.append(f"dictionary {self.dictionary!r} is unknown; use one of {', '.join(DICTIONARY_NAMES)}")
        if problems:
            raise CalibrationError("; ".join(problems))

    @property
    def has_ids(self) -> bool:
        """True when every detected point is identified (needed for a belt pose)."""
        return self.type != "chessboard"

    def pattern_size_mm(self) -> tuple[float, float]:
        """Printed pattern extent ``(width, height)`` in mm, without margins."""
        if self.type == "chessboard":
            return (self.cols + 1) * self.square_mm, (self.rows + 1) * self.square_mm
        if self.type == "charuco":
            return self.cols * self.square_mm, self.rows * self.square_mm
        pitch = self.marker_mm + self.separation_mm
        return self.cols * pitch - self.separation_mm, self.rows * pitch - self.separation_mm

    def describe(self) -> str:
        """One line for people: what to print or hold up."""
        if self.type == "chessboard":
            return f"chessboard with {self.cols}x{self.rows} inner corners, squares {self.square_mm:g} mm"
        if self.type == "charuco":
            return (
                f"ChArUco board {self.cols}x{self.rows} squares of {self.square_mm:g} mm, "
                f"markers {self.marker_mm:g} mm from {self.dictionary}"
            )
        return (
            f"ArUco grid {self.cols}x{self.rows} markers of {self.marker_mm:g} mm, gaps {self.separation_mm:g} mm, "
            f"from {self.dictionary}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> BoardSpec:
        return BoardSpec(**data)


@dataclass(frozen=True)
class BoardDetection:
    """A board found in one image.

    Attributes:
        image_points_px: ``(N, 2)`` detected points, distorted image pixels.
        object_points_mm: ``(N, 3)`` the same points in board coordinates (``z = 0``).
        point_ids: ``(N,)`` id of each point (corner index, ChArUco corner id, or marker id * 4 + corner).
        marker_corners_px: ``(M, 4, 2)`` detected marker outlines (empty for a chessboard).
        marker_ids: ``(M,)`` their ids.
        edge_width_px: 10-90 % edge rise width, a blur measure (sharp prints give ~2-3 px); NaN if unknown.
    """

    image_points_px: F64
    object_points_mm: F64
    point_ids: I32
    marker_corners_px: F64 = field(default_factory=lambda: np.zeros((0, 4, 2)))
    marker_ids: I32 = field(default_factory=lambda: np.zeros((0,), np.int32))
    edge_width_px: float = float("nan")

    def __len__(self) -> int:
        return int(self.image_points_px.shape[0])


# ---------------------------------------------------------------------- OpenCV objects


def _cv2() -> Any:
    import cv2

    return cv2


def get_dictionary(name: str) -> Any:
    """The OpenCV ArUco dictionary called ``name``."""
    if name not in DICTIONARY_NAMES:
        raise CalibrationError(f"dictionary {name!r} is unknown; use one of {', '.join(DICTIONARY_NAMES)}")
    cv2 = _cv2()
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))


def cv_board(spec: BoardSpec) -> Any:
    """OpenCV board object (``CharucoBoard`` or ``GridBoard``) for a marker board."""
    cv2 = _cv2()
    d = get_dictionary(spec.dictionary)
    if spec.type == "charuco":
        b = cv2.aruco.CharucoBoard((spec.cols, spec.rows), spec.square_mm, spec.marker_mm, d)
        b.setLegacyPattern(spec.legacy_pattern)
        return b
    if spec.type == "aruco_grid":
        return cv2.aruco.GridBoard((spec.cols, spec.rows), spec.marker_mm, spec.separation_mm, d)
    raise CalibrationError("a chessboard has no markers; use a ChArUco or ArUco sheet here")


def board_marker_ids(spec: BoardSpec) -> I32:
    """Marker ids printed on a marker board."""
    return np.asarray(cv_board(spec).getIds(), dtype=np.int32).reshape(-1)


def _detector_parameters(refine_markers: bool = True) -> Any:
    """Marker detector settings.

    Args:
        refine_markers: refine marker corners to sub-pixel accuracy. Wanted when
            the marker corners are the measurement (ArUco grids); ChArUco boards
            refine their chessboard corners themselves and calibrate best from
            unrefined markers (OpenCV's default).
    """
    cv2 = _cv2()
    p = cv2.aruco.DetectorParameters()
    p.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX if refine_markers else cv2.aruco.CORNER_REFINE_NONE
    return p


def to_gray(image: U8) -> U8:
    """Grey copy of a BGR or grey image."""
    if image.ndim == 2:
        return image
    cv2 = _cv2()
    out: U8 = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return out


# ---------------------------------------------------------------------- detection


def detect_board(image: U8, spec: BoardSpec) -> BoardDetection | None:
    """Find the board in an image; ``None`` when it is not there.

    Args:
        image: BGR or grey uint8 image.
        spec: the printed board.

    Returns:
        The detection with sub-pixel refined points, or ``None``. Marker boards
        may be partly visible; a chessboard must be complete.
    """
    gray = to_gray(image)
    if spec.type == "chessboard":
        return _detect_chessboard(gray, spec)
    return _detect_marker_board(gray, spec)


def _detect_chessboard(gray: U8, spec: BoardSpec) -> BoardDetection | None:
    cv2 = _cv2()
    size = (spec.cols, spec.rows)
    found, corners = cv2.findChessboardCorners(gray, size)
    if not found:
        return None
    pts = corners.reshape(-1, 2).astype(np.float64)
    # Refinement window: OpenCV's recipe (11x11) unless the squares are too small for it.
    spacing = float(np.median(np.linalg.norm(np.diff(pts.reshape(spec.rows, spec.cols, 2), axis=1), axis=2)))
    win = int(max(3, min(11, round(0.4 * spacing))))
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.1)
    refined = cv2.cornerSubPix(gray, corners.astype(np.float32), (win, win), (-1, -1), crit)
    pts = refined.reshape(-1, 2).astype(np.float64)
    grid = np.mgrid[0 : spec.cols, 0 : spec.rows].T.reshape(-1, 2).astype(np.float64) * spec.square_mm
    obj = np.column_stack([grid, np.zeros(len(grid))])
    edge = float(cv2.estimateChessboardSharpness(gray, size, refined)[0][0])
    return BoardDetection(
        image_points_px=pts,
        object_points_mm=obj,
        point_ids=np.arange(len(pts), dtype=np.int32),
        edge_width_px=edge,
    )


def detect_markers(gray: U8, dictionary: str, refine: bool = True) -> tuple[F64, I32]:
    """All markers of one dictionary: ``(corners (M, 4, 2), ids (M,))``, corners refined to sub-pixel if ``refine``."""
    cv2 = _cv2()
    det = cv2.aruco.ArucoDetector(get_dictionary(dictionary), _detector_parameters(refine))
    corners, ids, _rej = det.detectMarkers(gray)
    if ids is None or len(ids) == 0:
        return np.zeros((0, 4, 2)), np.zeros((0,), np.int32)
    return np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2), np.asarray(ids, dtype=np.int32).reshape(-1)


def _detect_marker_board(gray: U8, spec: BoardSpec) -> BoardDetection | None:
    cv2 = _cv2()
    board = cv_board(spec)
    if spec.type == "charuco":
        params = cv2.aruco.CharucoParameters()
        det = cv2.aruco.CharucoDetector(board, params, _detector_parameters(refine_markers=False))
        ch_corners, ch_ids, m_corners, m_ids = det.detectBoard(gray)
        if m_ids is None or len(m_ids) == 0:
            return None
        mc = np.asarray(m_corners, dtype=np.float64).reshape(-1, 4, 2)
        mi = np.asarray(m_ids, dtype=np.int32).reshape(-1)
        if ch_ids is None or len(ch_ids) < 4:
            return None
        obj, img = board.matchImagePoints(ch_corners, ch_ids)
        ids = np.asarray(ch_ids, dtype=np.int32).reshape(-1)
    else:
        mc, mi = detect_markers(gray, spec.dictionary)
        valid = np.isin(mi, board_marker_ids(spec))
        mc, mi = mc[valid], mi[valid]
        if len(mi) == 0:
            return None
        obj, img = board.matchImagePoints(list(mc.astype(np.float32).reshape(-1, 1, 4, 2)), mi.reshape(-1, 1))
        ids = (mi[:, None] * 4 + np.arange(4)[None, :]).reshape(-1).astype(np.int32)
    if obj is None or len(obj) < 4:
        return None
    return BoardDetection(
        image_points_px=np.asarray(img, dtype=np.float64).reshape(-1, 2),
        object_points_mm=np.asarray(obj, dtype=np.float64).reshape(-1, 3),
        point_ids=ids,
        marker_corners_px=mc,
        marker_ids=mi,
        edge_width_px=marker_edge_width_px(gray, mc),
    )


def marker_edge_width_px(gray: U8, marker_corners_px: F64) -> float:
    """Median 10-90 % rise width across the outer edges of detected markers (blur measure, pixels).

    Each marker side is sampled along its outward normal at its midpoint; a
    printed black-on-white edge in focus rises within 2-3 pixels.
    """
    cv2 = _cv2()
    widths = []
    steps = np.linspace(-1.0, 1.0, 41)
    for quad in np.asarray(marker_corners_px, dtype=np.float64).reshape(-1, 4, 2):
        centre = quad.mean(axis=0)
        for k in range(4):
            a, b = quad[k], quad[(k + 1) % 4]
            side = float(np.linalg.norm(b - a))
            if side < 12:
                continue
            mid = (a + b) / 2.0
            normal = mid - centre
            normal -= np.dot(normal, (b - a) / side) * (b - a) / side
            n_len = float(np.linalg.norm(normal))
            if n_len < 1e-6:
                continue
            normal /= n_len
            reach = min(0.2 * side, 12.0)
            pts = mid[None, :] + (steps * reach)[:, None] * normal[None, :]
            mx = pts[:, 0].astype(np.float32).reshape(1, -1)
            my = pts[:, 1].astype(np.float32).reshape(1, -1)
            prof = cv2.remap(gray, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float64).ravel()
            lo, hi = float(prof[:8].mean()), float(prof[-8:].mean())
            if hi - lo < 30:
                continue
            frac = (prof - lo) / (hi - lo)
            i10 = int(np.argmax(frac >= 0.1))
            i90 = int(np.argmax(frac >= 0.9))
            if i90 <= i10:
                continue
            widths.append((i90 - i10) * (2.0 * reach / (len(steps) - 1)))
    return float(np.median(widths)) if widths else float("nan")


# ---------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class BoardImage:
    """A board drawn at a known scale.

    Attributes:
        image: grey uint8, white margin around the pattern.
        px_per_mm: scale.
        margin_mm: white border around the pattern on every side.

    Board coordinate ``(x_mm, y_mm)`` sits at image pixel
    ``((x_mm + margin_mm) * px_per_mm - 0.5, (y_mm + margin_mm) * px_per_mm - 0.5)``
    (pixel centres at integer coordinates, as in OpenCV).
    """

    image: U8
    px_per_mm: float
    margin_mm: float

    def board_to_image_px(self, xy_mm: F64) -> F64:
        """Board mm ``(N, 2)`` to image pixel coordinates ``(N, 2)``."""
        return (np.asarray(xy_mm, dtype=np.float64) + self.margin_mm) * self.px_per_mm - 0.5


def render_board(spec: BoardSpec, px_per_mm: float, margin_mm: float) -> BoardImage:
    """Draw the board at ``px_per_mm`` with a white margin (for printing or simulation).

    The margin is rounded to whole pixels; the returned ``margin_mm`` is the one drawn.
    """
    w_mm, h_mm = spec.pattern_size_mm()
    m_px = round(margin_mm * px_per_mm)
    w_px = round(w_mm * px_per_mm) + 2 * m_px
    h_px = round(h_mm * px_per_mm) + 2 * m_px
    drawn_margin_mm = m_px / px_per_mm
    if abs(spec.square_mm * px_per_mm - round(spec.square_mm * px_per_mm)) > 1e-6:
        log.debug("board scale %.3f px/mm is not a whole number of pixels per square; edges are rounded", px_per_mm)
    if spec.type == "chessboard":
        img = np.full((h_px, w_px), 255, np.uint8)
        sq = spec.square_mm * px_per_mm
        for j in range(spec.rows + 1):
            for i in range(spec.cols + 1):
                if (i + j) % 2 == 0:
                    x0, y0 = round(m_px + i * sq), round(m_px + j * sq)
                    x1, y1 = round(m_px + (i + 1) * sq), round(m_px + (j + 1) * sq)
                    img[y0:y1, x0:x1] = 0
        return BoardImage(img, px_per_mm, drawn_margin_mm)
    board = cv_board(spec)
    img = board.generateImage((w_px, h_px), marginSize=m_px, borderBits=1)
    return BoardImage(np.asarray(img, dtype=np.uint8), px_per_mm, drawn_margin_mm)
