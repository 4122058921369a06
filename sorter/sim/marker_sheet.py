"""Render printed calibration sheets as a simulated camera sees them, lens distortion included.

Every output pixel is traced back through :class:`sorter.geometry.CameraModel`
(undistortion, then the plane homography) onto the sheet, and the sheet image
is sampled there (``cv2.remap``) at several sub-pixels per pixel, so edges are
anti-aliased the way a real sensor integrates light. Used by tests and by the
simulated calibration procedures: a board held in front of the camera
(intrinsics), a sheet lying on the belt (belt pose), a sheet riding the belt
past the camera while the encoder counts (encoder scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sorter.calib.boards import BoardImage
from sorter.geometry import CameraModel, rodrigues, rotation_to_rvec

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


class PlaneView:
    """Cached viewing rays of a camera, to find where each sub-pixel meets a plane.

    Args:
        camera: lens model (its pose is ignored here; poses are given per call).
        supersample: sub-pixels per pixel along each axis.
    """

    def __init__(self, camera: CameraModel, supersample: int = 2) -> None:
        self.camera = camera
        self.supersample = supersample
        s = supersample
        n_u, n_v = camera.width_px * s, camera.height_px * s
        # Undistortion is smooth: solve it exactly on a coarse lattice (every `step` sub-pixels)
        # and interpolate bilinearly; the interpolation error is far below 0.001 px.
        step = 4
        cu = np.arange(0, n_u + step, step, dtype=np.float64)
        cv_ = np.arange(0, n_v + step, step, dtype=np.float64)
        uu, vv = np.meshgrid((cu + 0.5) / s - 0.5, (cv_ + 0.5) / s - 0.5)
        xyd = np.column_stack([(uu.ravel() - camera.cx) / camera.fx, (vv.ravel() - camera.cy) / camera.fy])
        coarse = camera.undistort_normalised(xyd).reshape(len(cv_), len(cu), 2).astype(np.float32)
        import cv2

        mu, mv = np.meshgrid(np.arange(n_u, dtype=np.float32) / step, np.arange(n_v, dtype=np.float32) / step)
        fine = cv2.remap(coarse, mu, mv, cv2.INTER_LINEAR)
        self._rays = fine.reshape(-1, 2).astype(np.float64)  # (N, 2) undistorted normalised coordinates
        self._shape = (n_v, n_u)

    def plane_xy_mm(self, rvec: F64, tvec_mm: F64) -> F32:
        """Plane coordinates ``(H*s, W*s, 2)`` seen by each sub-pixel; NaN where the ray misses the front.

        Args:
            rvec: plane->camera rotation vector.
            tvec_mm: plane->camera translation (``X_cam = R X_plane + t``).
        """
        rot = rodrigues(np.asarray(rvec, dtype=np.float64))
        h = np.column_stack([rot[:, 0], rot[:, 1], np.asarray(tvec_mm, dtype=np.float64).reshape(3)])
        h_inv = np.linalg.inv(h)
        r = self._rays
        w = r[:, 0:1] * h_inv[:, 0] + r[:, 1:2] * h_inv[:, 1] + h_inv[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = w[:, :2] / w[:, 2:3]
        # the plane point must lie in front of the camera: z_cam > 0 <=> w_z > 0 for this homography
        xy[w[:, 2] <= 0] = np.nan
        return xy.reshape(self._shape[0], self._shape[1], 2).astype(np.float32)


class SheetSampler:
    """Samples a sheet image at fixed plane coordinates for any sheet position (maps computed once).

    Args:
        plane_xy_mm: ``(H*s, W*s, 2)`` plane coordinates per sub-pixel (from :class:`PlaneView`).
        sheet: the printed sheet.
        supersample: ``s`` of ``plane_xy_mm``.
        background: grey level of the plane outside the sheet (the belt).
        contrast: grey levels of printed black and of paper white.
    """

    def __init__(
        self,
        plane_xy_mm: F32,
        sheet: BoardImage,
        supersample: int,
        background: int = 70,
        contrast: tuple[int, int] = (25, 225),
    ) -> None:
        lo, hi = contrast
        self.sheet = sheet
        self.supersample = supersample
        self.background = float(background)
        self._tex = (sheet.image.astype(np.float32) * ((hi - lo) / 255.0) + lo).astype(np.float32)
        ppm, m = sheet.px_per_mm, sheet.margin_mm
        far = -1e6  # rays that miss the plane sample the background
        self._mx = np.nan_to_num((plane_xy_mm[..., 0] + m) * ppm - 0.5, nan=far).astype(np.float32)
        self._my = np.nan_to_num((plane_xy_mm[..., 1] + m) * ppm - 0.5, nan=far).astype(np.float32)

    def render(self, offset_mm: tuple[float, float]) -> F32:
        """Grey ``(H, W)`` float image with the sheet's board origin at plane position ``offset_mm``."""
        import cv2

        ppm = self.sheet.px_per_mm
        big = cv2.remap(
            self._tex,
            self._mx - np.float32(offset_mm[0] * ppm),
            self._my - np.float32(offset_mm[1] * ppm),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=self.background,
        )
        s = self.supersample
        if s == 1:
            return np.asarray(big, dtype=np.float32)
        return np.asarray(cv2.resize(big, (big.shape[1] // s, big.shape[0] // s), interpolation=cv2.INTER_AREA), dtype=np.float32)


def render_sheet(
    plane_xy_mm: F32,
    sheet: BoardImage,
    offset_mm: tuple[float, float],
    supersample: int,
    background: int = 70,
    contrast: tuple[int, int] = (25, 225),
) -> U8:
    """Sample a sheet image at given plane coordinates and average the sub-pixels.

    Args:
        plane_xy_mm: ``(H*s, W*s, 2)`` plane coordinates per sub-pixel (from :class:`PlaneView`).
        sheet: the printed sheet; its board origin lies at plane coordinate ``offset_mm``.
        offset_mm: plane position of the board origin.
        supersample: ``s`` of ``plane_xy_mm``.
        background: grey level of the plane outside the sheet (the belt).
        contrast: grey levels of printed black and of paper white.

    Returns:
        Grey ``(H, W)`` image.
    """
    img = SheetSampler(plane_xy_mm, sheet, supersample, background, contrast).render(offset_mm)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _finish(gray_f: F64 | F32 | U8, noise_sigma: float, rng: np.random.Generator) -> U8:
    g = np.asarray(gray_f, dtype=np.float64)
    if noise_sigma > 0:
        g = g + rng.normal(0.0, noise_sigma, g.shape)
    g8 = np.clip(np.rint(g), 0, 255).astype(np.uint8)
    return np.repeat(g8[:, :, None], 3, axis=2)


class BeltSheetScene:
    """A sheet lying flat on the belt, seen by a camera with a known mount.

    The sheet's board origin lies at belt position ``(x_mm, y_mm)`` when the
    odometer reads 0 and rides with the belt: at odometer ``s_mm`` it is at
    ``(x_mm, y_mm + s_mm)``. The sheet's x axis runs across the belt, its y
    axis along the direction of travel.

    Args:
        camera: the true camera (intrinsics, distortion, pose over the belt).
        sheet: the printed sheet.
        x_mm: across-belt position of the sheet's board origin.
        y_mm: along-belt position of the board origin at odometer 0.
        supersample: sub-pixels per pixel per axis.
        noise_sigma: sensor noise, grey levels.
        seed: noise seed.
    """

    def __init__(
        self,
        camera: CameraModel,
        sheet: BoardImage,
        x_mm: float,
        y_mm: float,
        supersample: int = 2,
        noise_sigma: float = 2.0,
        seed: int = 0,
    ) -> None:
        self.camera = camera
        self.sheet = sheet
        self.x_mm = x_mm
        self.y_mm = y_mm
        self.supersample = supersample
        self.noise_sigma = noise_sigma
        self._rng = np.random.default_rng(seed)
        xy = PlaneView(camera, supersample).plane_xy_mm(np.array(camera.rvec), np.array(camera.tvec_mm))
        self._sampler = SheetSampler(xy, sheet, supersample)

    def render(self, s_mm: float = 0.0, blur_mm: float = 0.0) -> U8:
        """BGR image with the belt at odometer ``s_mm``; ``blur_mm`` of travel during the exposure smears it.

        The blur averages one render per millimetre of travel (at least two when blurred).
        """
        n = max(2, math.ceil(blur_mm)) if blur_mm > 0 else 1
        acc = np.zeros((self.camera.height_px, self.camera.width_px), np.float32)
        for k in range(n):
            ds = blur_mm * ((k + 0.5) / n - 0.5) if n > 1 else 0.0
            acc += self._sampler.render((self.x_mm, self.y_mm + s_mm + ds))
        return _finish(acc / n, self.noise_sigma, self._rng)


@dataclass(frozen=True)
class BoardPose:
    """Where a hand-held board was: board->camera rotation vector and translation (mm)."""

    rvec: tuple[float, float, float]
    tvec_mm: tuple[float, float, float]


def board_poses(
    camera: CameraModel,
    board_size_mm: tuple[float, float],
    n_views: int,
    seed: int = 0,
    fill: float = 0.45,
    max_tilt_deg: float = 40.0,
) -> list[BoardPose]:
    """Varied poses of a board held in front of the camera, spread over the image and tilted.

    The board is placed so that it spans about ``fill`` of the image width and
    lies wholly inside the image (with a 4 % border); centres cycle over a 3x3
    grid of image positions plus the centre, tilts over alternating directions.

    Args:
        camera: the camera (intrinsics and distortion; pose ignored).
        board_size_mm: ``(width, height)`` of the board pattern.
        n_views: how many poses.
        seed: random seed for the jitter of positions and angles.
        fill: board width as a share of the image width, roughly.
        max_tilt_deg: largest tilt about the board's own axes.
    """
    rng = np.random.default_rng(seed)
    w_mm, h_mm = board_size_mm
    dist0_mm = camera.fx * w_mm / (fill * camera.width_px)
    bw, bh = 0.04 * camera.width_px, 0.04 * camera.height_px
    half_w = fill * camera.width_px / 2.0
    half_h = half_w * h_mm / w_mm
    u_lo, u_hi = bw + half_w, camera.width_px - bw - half_w
    v_lo, v_hi = bh + half_h, camera.height_px - bh - half_h
    spots = [(0.5, 0.5), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.0), (0.5, 1.0), (0.0, 0.5), (1.0, 0.5)]
    corners = np.array([[0.0, 0.0, 0.0], [w_mm, 0.0, 0.0], [w_mm, h_mm, 0.0], [0.0, h_mm, 0.0]])
    centre_board = np.array([w_mm / 2.0, h_mm / 2.0, 0.0])
    poses: list[BoardPose] = []
    tries = 0
    while len(poses) < n_views:
        tries += 1
        if tries > 200:
            raise RuntimeError("could not place the board inside the image; lower 'fill' or 'max_tilt_deg'")
        i = len(poses)
        fu, fv = spots[i % len(spots)]
        u = u_lo + fu * (u_hi - u_lo) + rng.uniform(-0.03, 0.03) * camera.width_px
        v = v_lo + fv * (v_hi - v_lo) + rng.uniform(-0.03, 0.03) * camera.height_px
        tilt = math.radians(max_tilt_deg) * rng.uniform(0.5, 1.0)
        axis_angle = (i * 2.399963) % (2 * math.pi)  # golden angle: tilt directions spread evenly
        rot_tilt = rodrigues(np.array([math.cos(axis_angle) * tilt, math.sin(axis_angle) * tilt, rng.uniform(-0.3, 0.3)]))
        d = dist0_mm * rng.uniform(1.0, 1.15) * (1.0 + 0.02 * tries)
        target = np.array([(u - camera.cx) / camera.fx * d, (v - camera.cy) / camera.fy * d, d])
        t = target - rot_tilt @ centre_board
        cam = (corners @ rot_tilt.T) + t
        if np.any(cam[:, 2] <= 0):
            continue
        norm = cam[:, :2] / cam[:, 2:3]
        d_xy = camera.distort_normalised(norm)
        px = np.column_stack([d_xy[:, 0] * camera.fx + camera.cx, d_xy[:, 1] * camera.fy + camera.cy])
        if (
            px[:, 0].min() < bw
            or px[:, 0].max() > camera.width_px - bw
            or px[:, 1].min() < bh
            or px[:, 1].max() > camera.height_px - bh
        ):
            continue
        tries = 0
        rv = rotation_to_rvec(rot_tilt)
        poses.append(BoardPose((float(rv[0]), float(rv[1]), float(rv[2])), (float(t[0]), float(t[1]), float(t[2]))))
    return poses


def render_board_view(view: PlaneView, board: BoardImage, pose: BoardPose, noise_sigma: float = 2.0, seed: int = 0) -> U8:
    """BGR image of a board held at ``pose`` in front of the camera of ``view`` (a grey wall behind it)."""
    xy = view.plane_xy_mm(np.array(pose.rvec), np.array(pose.tvec_mm))
    gray = render_sheet(xy, board, (0.0, 0.0), view.supersample, background=120)
    return _finish(gray, noise_sigma, np.random.default_rng(seed))


@dataclass(frozen=True)
class BeltMotion:
    """A belt speed profile with an encoder, for simulated encoder-scale calibration.

    Speed ``v(t) = mean * (1 + variation * sin(2 pi t / period))``; the odometer is its
    exact integral and the encoder count is ``floor(s_mm * counts_per_mm)``.

    Attributes:
        mean_speed_mm_s: mean belt speed.
        counts_per_mm: true encoder resolution (what the calibration should find, inverted).
        variation: relative speed amplitude (0 = constant speed).
        period_s: period of the speed variation.
    """

    mean_speed_mm_s: float
    counts_per_mm: float
    variation: float = 0.0
    period_s: float = 1.0

    def speed_mm_s(self, t_ns: int) -> float:
        t = t_ns * 1e-9
        return self.mean_speed_mm_s * (1.0 + self.variation * math.sin(2.0 * math.pi * t / self.period_s))

    def odometer_mm(self, t_ns: int) -> float:
        t = t_ns * 1e-9
        w = 2.0 * math.pi / self.period_s
        return self.mean_speed_mm_s * (t + self.variation * (1.0 - math.cos(w * t)) / w)

    def encoder_count(self, t_ns: int) -> int:
        return math.floor(self.odometer_mm(t_ns) * self.counts_per_mm)
