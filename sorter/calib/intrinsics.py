"""Camera intrinsics from views of a flat board: OpenCV calibration with view rejection and coverage hints.

The result uses OpenCV's 5-coefficient distortion ``(k1, k2, p1, p2, k3)``,
the model of :class:`sorter.geometry.CameraModel`; simpler models fix some
coefficients at zero. Errors are RMS reprojection errors in pixels.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sorter.calib.boards import BoardDetection, BoardSpec
from sorter.calib_store import intrinsics_from_dict as intrinsics_from_dict  # read from a file: the store's job
from sorter.errors import CalibrationError
from sorter.geometry import CameraIntrinsics as CameraIntrinsics  # the lens model lives with the camera model

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

DistortionModel = Literal["none", "k1", "k1k2", "radial", "k1k2p1p2", "full5", "auto"]
#: Distortion models from simplest to fullest; ``auto`` picks among them.
DISTORTION_MODELS: tuple[str, ...] = ("none", "k1", "k1k2", "radial", "k1k2p1p2", "full5", "auto")


@dataclass(frozen=True)
class IntrinsicsOptions:
    """How to calibrate and what counts as a pass.

    Attributes:
        distortion: model, from ``none`` to ``full5`` (all five coefficients); ``auto``
            takes the simplest model whose RMS is within 3 % (+0.005 px) of the fullest.
        fix_aspect_ratio: force ``fx == fy`` (square pixels; steadier with few views).
        fix_principal_point: keep the principal point at the image centre.
        zero_tangent: force ``p1 = p2 = 0`` whatever the model.
        min_views: fewest accepted views for a result.
        min_points_per_view: views with fewer detected points are rejected.
        max_edge_width_px: views blurrier than this (10-90 % edge rise) are rejected.
        max_view_rms_px: a view is an outlier when its RMS exceeds this ...
        outlier_factor: ... and also this many times the median view RMS.
        max_rms_px: pass threshold on the overall RMS.
    """

    distortion: DistortionModel = "full5"
    fix_aspect_ratio: bool = False
    fix_principal_point: bool = False
    zero_tangent: bool = False
    min_views: int = 4
    min_points_per_view: int = 8
    max_edge_width_px: float = 6.0
    max_view_rms_px: float = 1.5
    outlier_factor: float = 4.0
    max_rms_px: float = 1.0


@dataclass(frozen=True)
class ViewResult:
    """One view used in the calibration: where from, how many points, its RMS, its board tilt."""

    source: str
    n_points: int
    rms_px: float
    tilt_deg: float
    edge_width_px: float


@dataclass(frozen=True)
class RejectedView:
    """A view left out, and why (in words for the person running the calibration)."""

    source: str
    reason: str


@dataclass(frozen=True)
class IntrinsicsResult:
    """Outcome of an intrinsics calibration.

    Attributes:
        intrinsics: the fitted lens model.
        rms_px: RMS reprojection error over all accepted points.
        model: distortion model used.
        views: accepted views with their errors.
        rejected: views left out and why.
        coverage_fraction: share of the image area touched by the board in some view.
        hints: what to do to improve the calibration (coverage, tilt).
        passed: ``rms_px <= max_rms_px`` and enough views.
        problems: why it did not pass.
    """

    intrinsics: CameraIntrinsics
    rms_px: float
    model: str
    views: tuple[ViewResult, ...]
    rejected: tuple[RejectedView, ...]
    coverage_fraction: float
    hints: tuple[str, ...]
    passed: bool
    problems: tuple[str, ...] = ()
    options: IntrinsicsOptions = field(default_factory=IntrinsicsOptions)


# ---------------------------------------------------------------------- flags


def _flags(model: str, options: IntrinsicsOptions) -> int:
    import cv2

    flags = 0
    if options.fix_aspect_ratio:
        flags |= cv2.CALIB_FIX_ASPECT_RATIO
    if options.fix_principal_point:
        flags |= cv2.CALIB_FIX_PRINCIPAL_POINT
    fixed = {
        "none": cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST,
        "k1": cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST,
        "k1k2": cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST,
        "radial": cv2.CALIB_ZERO_TANGENT_DIST,
        "k1k2p1p2": cv2.CALIB_FIX_K3,
        "full5": 0,
    }[model]
    flags |= fixed
    if options.zero_tangent:
        flags |= cv2.CALIB_ZERO_TANGENT_DIST
    return flags


@dataclass(frozen=True)
class _Fit:
    rms_px: float
    k: F64
    dist: F64
    rvecs: tuple[F64, ...]
    per_view_px: F64


def _calibrate(obj: list[F64], img: list[F64], size: tuple[int, int], model: str, options: IntrinsicsOptions) -> _Fit:
    import cv2

    # With CALIB_FIX_ASPECT_RATIO OpenCV keeps fx/fy of the initial matrix: identity means square pixels.
    # Without CALIB_USE_INTRINSIC_GUESS the principal point starts (and with FIX_PRINCIPAL_POINT stays) at the centre.
    k0 = np.eye(3) if options.fix_aspect_ratio else None
    flags = _flags(model, options)
    op = [o.astype(np.float32).reshape(-1, 1, 3) for o in obj]
    ip = [i.astype(np.float32).reshape(-1, 1, 2) for i in img]
    try:
        calibrate: Any = cv2.calibrateCameraExtended  # the stubs do not allow K0 = None
        out = calibrate(op, ip, size, k0, None, flags=flags)
    except cv2.error as e:
        raise CalibrationError(
            f"OpenCV could not calibrate from these views ({str(e).strip().splitlines()[-1]}); "
            "take more views with the board at different angles and positions"
        ) from None
    rms, k, dist, rvecs, _tvecs, _si, _se, per_view = out
    d = np.zeros(5)
    flat = np.asarray(dist, dtype=np.float64).ravel()
    d[: min(5, len(flat))] = flat[:5]
    return _Fit(
        float(rms),
        np.asarray(k, dtype=np.float64),
        d,
        tuple(np.asarray(r).reshape(3) for r in rvecs),
        np.asarray(per_view).ravel(),
    )


def _tilt_deg(rvec: F64) -> float:
    """Angle between the board normal and the optical axis."""
    from sorter.geometry import rodrigues

    normal = rodrigues(rvec)[:, 2]
    return math.degrees(math.acos(min(1.0, abs(float(normal[2])))))


# ---------------------------------------------------------------------- coverage


def coverage(points_px: list[F64], width_px: int, height_px: int) -> tuple[float, tuple[str, ...]]:
    """How much of the image the board has covered, and where it is missing.

    Args:
        points_px: one ``(N, 2)`` array of detected points per view.
        width_px: image width.
        height_px: image height.

    Returns:
        ``(fraction, hints)``: the share of the image inside the board outline
        of at least one view, and one hint per image border region that the
        board never reached (e.g. "move the board to the left edge").
    """
    import cv2

    scale = 64.0 / max(width_px, height_px)
    mw, mh = max(1, round(width_px * scale)), max(1, round(height_px * scale))
    mask = np.zeros((mh, mw), np.uint8)
    for pts in points_px:
        if len(pts) >= 3:
            hull = cv2.convexHull((np.asarray(pts) * scale).astype(np.float32)).astype(np.int32)
            cv2.fillConvexPoly(mask, hull, 1)
    fraction = float(mask.mean())
    third_w, third_h = max(1, mw // 4), max(1, mh // 4)
    regions = {
        "left edge": mask[:, :third_w],
        "right edge": mask[:, -third_w:],
        "top edge": mask[:third_h, :],
        "bottom edge": mask[-third_h:, :],
        "top-left corner": mask[:third_h, :third_w],
        "top-right corner": mask[:third_h, -third_w:],
        "bottom-left corner": mask[-third_h:, :third_w],
        "bottom-right corner": mask[-third_h:, -third_w:],
    }
    hints = []
    edges_missing = set()
    for name, region in regions.items():
        if float(region.mean()) < 0.25:
            if name.endswith("edge"):
                edges_missing.add(name.split()[0])
                hints.append(f"move the board to the {name} of the image")
            elif not any(part in edges_missing for part in name.replace("-", " ").split()):
                hints.append(f"move the board into the {name} of the image")
    return fraction, tuple(hints)


# ---------------------------------------------------------------------- main entry


def calibrate_intrinsics(
    views: list[tuple[str, BoardDetection]],
    width_px: int,
    height_px: int,
    board: BoardSpec,
    options: IntrinsicsOptions | None = None,
    rejected: list[RejectedView] | None = None,
) -> IntrinsicsResult:
    """Calibrate a camera from board detections.

    Views that are blurred, have too few points, or reproject far worse than
    the others are left out (each with a reason). The fit never silently
    passes: ``passed`` is False with ``problems`` when the RMS or the number of
    views misses the thresholds in ``options``.

    Args:
        views: ``(source name, detection)`` per image where the board was found.
        width_px: image width.
        height_px: image height.
        board: the board used (recorded with the result).
        options: model and thresholds.
        rejected: views already left out upstream (e.g. board not found), kept in the report.

    Raises:
        CalibrationError: fewer usable views than ``options.min_views``, saying what to do.
    """
    opts = options or IntrinsicsOptions()
    rej = list(rejected or [])
    usable: list[tuple[str, BoardDetection]] = []
    for src, det in views:
        if len(det) < opts.min_points_per_view:
            rej.append(
                RejectedView(src, f"only {len(det)} board points seen (need {opts.min_points_per_view}); show more of the board")
            )
        elif math.isfinite(det.edge_width_px) and det.edge_width_px > opts.max_edge_width_px:
            rej.append(
                RejectedView(
                    src,
                    f"blurred (edges {det.edge_width_px:.1f} px wide, limit {opts.max_edge_width_px:g}); "
                    "hold the board still, focus the lens or shorten the exposure",
                )
            )
        else:
            usable.append((src, det))
    if len(usable) < opts.min_views:
        raise CalibrationError(
            f"only {len(usable)} usable view(s) of the board (at least {opts.min_views} needed); "
            f"take {opts.min_views - len(usable) + 3} or more sharp views with the board at different positions and angles"
            + (f". Left out: {'; '.join(f'{r.source}: {r.reason}' for r in rej[:5])}" if rej else "")
        )

    size = (width_px, height_px)
    model: str = "full5" if opts.distortion == "auto" else opts.distortion
    while True:
        fit = _calibrate([d.object_points_mm for _, d in usable], [d.image_points_px for _, d in usable], size, model, opts)
        med = float(np.median(fit.per_view_px))
        worst = int(np.argmax(fit.per_view_px))
        err = float(fit.per_view_px[worst])
        if err > opts.max_view_rms_px and err > opts.outlier_factor * med and len(usable) > opts.min_views:
            src = usable[worst][0]
            log.info("leaving out view %s: RMS %.2f px vs median %.2f px", src, err, med)
            rej.append(
                RejectedView(src, f"reprojects badly ({err:.2f} px vs median {med:.2f} px): board bent, moving, or mis-detected")
            )
            usable.pop(worst)
            continue
        break

    if opts.distortion == "auto":
        model, fit = _choose_model(usable, size, opts, fit)

    intr = CameraIntrinsics(
        width_px=width_px,
        height_px=height_px,
        fx=float(fit.k[0, 0]),
        fy=float(fit.k[1, 1]),
        cx=float(fit.k[0, 2]),
        cy=float(fit.k[1, 2]),
        dist=(float(fit.dist[0]), float(fit.dist[1]), float(fit.dist[2]), float(fit.dist[3]), float(fit.dist[4])),
    )
    view_results = tuple(
        ViewResult(src, len(det), float(e), _tilt_deg(rv), float(det.edge_width_px))
        for (src, det), e, rv in zip(usable, fit.per_view_px, fit.rvecs, strict=True)
    )
    frac, hints_l = coverage([d.image_points_px for _, d in usable], width_px, height_px)
    hints = list(hints_l)
    if len(view_results) < 10:
        hints.append(f"only {len(view_results)} views: 10-20 views at varied positions and angles give a steadier result")
    if max(v.tilt_deg for v in view_results) < 20.0:
        hints.append(
            "tilt the board 30-45 degrees in some views (left/right and up/down); flat-on views leave the focal length loose"
        )
    problems = []
    if fit.rms_px > opts.max_rms_px:
        problems.append(
            f"RMS reprojection error {fit.rms_px:.3f} px exceeds {opts.max_rms_px:g} px: check the board is flat, "
            "the square size is right, and the images are sharp"
        )
    return IntrinsicsResult(
        intrinsics=intr,
        rms_px=fit.rms_px,
        model=model,
        views=view_results,
        rejected=tuple(rej),
        coverage_fraction=frac,
        hints=tuple(hints),
        passed=not problems,
        problems=tuple(problems),
        options=opts,
    )


def _choose_model(
    usable: list[tuple[str, BoardDetection]], size: tuple[int, int], opts: IntrinsicsOptions, full: _Fit
) -> tuple[str, _Fit]:
    obj = [d.object_points_mm for _, d in usable]
    img = [d.image_points_px for _, d in usable]
    for model in ("none", "k1", "k1k2", "radial", "k1k2p1p2"):
        fit = _calibrate(obj, img, size, model, opts)
        if fit.rms_px <= full.rms_px * 1.03 + 0.005:
            log.info("distortion model %s: RMS %.4f px vs %.4f px with all five coefficients", model, fit.rms_px, full.rms_px)
            return model, fit
    return "full5", full


# ---------------------------------------------------------------------- serialisation


def result_to_dict(result: IntrinsicsResult, board: BoardSpec) -> dict[str, Any]:
    """The YAML section for a calibration file (names ``fx``, ``fy``, ``cx``, ``cy``, ``dist``, ``rms_px``)."""
    i = result.intrinsics
    o = result.options
    return {
        "width_px": i.width_px,
        "height_px": i.height_px,
        "fx": i.fx,
        "fy": i.fy,
        "cx": i.cx,
        "cy": i.cy,
        "dist": list(i.dist),
        "rms_px": result.rms_px,
        "passed": result.passed,
        "problems": list(result.problems),
        "model": {
            "distortion": result.model,
            "fix_aspect_ratio": o.fix_aspect_ratio,
            "fix_principal_point": o.fix_principal_point,
            "zero_tangent": o.zero_tangent,
        },
        "thresholds": {"max_rms_px": o.max_rms_px, "min_views": o.min_views, "max_edge_width_px": o.max_edge_width_px},
        "board": board.to_dict(),
        "coverage_fraction": result.coverage_fraction,
        "hints": list(result.hints),
        "views": [
            {
                "source": v.source,
                "points": v.n_points,
                "rms_px": v.rms_px,
                "tilt_deg": v.tilt_deg,
                "edge_width_px": None if math.isnan(v.edge_width_px) else v.edge_width_px,
            }
            for v in result.views
        ],
        "rejected": [{"source": r.source, "reason": r.reason} for r in result.rejected],
    }
