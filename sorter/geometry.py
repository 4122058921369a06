"""Pixel <-> belt geometry: pinhole camera with lens distortion over a flat belt.

Pure numpy (no OpenCV) so the tracker, planner and tests can use it anywhere.

World frame (millimetres, right-handed): ``X`` across the belt (``x_mm``, 0 at
the left edge), ``Y`` along the belt in the direction of travel (``y_w_mm``, 0
at the camera reference line), ``Z`` pointing *into* the belt; the belt surface
is ``Z = 0`` and a camera above it has negative ``Z``. A camera looking straight
down with its image x-axis across the belt therefore sees objects move towards
larger image y.

The distortion model is OpenCV's ``(k1, k2, p1, p2, k3)`` so that calibrations
made with ``cv2.calibrateCamera`` load unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def rodrigues(rvec: F64) -> F64:
    """Rotation vector (axis * angle, radians) to a 3x3 rotation matrix."""
    r = np.asarray(rvec, dtype=np.float64).reshape(3)
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    out: F64 = np.eye(3) + math.sin(theta) * kx + (1.0 - math.cos(theta)) * (kx @ kx)
    return out


def rotation_to_rvec(rot: F64) -> F64:
    """3x3 rotation matrix to a rotation vector (inverse of :func:`rodrigues`).

    The angle comes from ``atan2(sin, cos)``, well conditioned at every angle (``acos`` of the trace is not near
    0 and pi); near pi, where the skew part vanishes, the axis comes from the symmetric part and its sign from
    the skew part.
    """
    rot = np.asarray(rot, dtype=np.float64)
    w = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    sin_t = float(np.linalg.norm(w)) / 2.0
    cos_t = (float(np.trace(rot)) - 1.0) / 2.0
    theta = math.atan2(sin_t, cos_t)
    if theta < 1e-12:
        return np.zeros(3)
    if sin_t > 1e-3 or cos_t > 0.0:  # away from pi (small angles included: theta / sin(theta) -> 1)
        out: F64 = w * (theta / (2.0 * sin_t))
        return out
    # near pi: (R + R^T) / 2 = cos(t) I + (1 - cos(t)) a a^T
    aat = ((rot + rot.T) / 2.0 - cos_t * np.eye(3)) / (1.0 - cos_t)
    i = int(np.argmax(np.diag(aat)))
    axis = aat[:, i] / math.sqrt(max(float(aat[i, i]), 1e-300))
    axis /= float(np.linalg.norm(axis))
    if float(axis @ w) < 0.0:
        axis = -axis
    return axis * theta


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics, distortion and pose of a camera over the belt.

    Attributes:
        width_px: image width.
        height_px: image height.
        fx: focal length in pixels along x.
        fy: focal length in pixels along y.
        cx: principal point x (pixels).
        cy: principal point y (pixels).
        dist: OpenCV distortion ``(k1, k2, p1, p2, k3)``.
        rvec: world->camera rotation vector (radians).
        tvec_mm: world->camera translation (``X_cam = R X_w + t``), millimetres.
    """

    width_px: int
    height_px: int
    fx: float
    fy: float
    cx: float
    cy: float
    dist: tuple[float, float, float, float, float]
    rvec: tuple[float, float, float]
    tvec_mm: tuple[float, float, float]

    # ------------------------------------------------------------------ construction
    @staticmethod
    def looking_down(
        width_px: int,
        height_px: int,
        hfov_deg: float,
        height_mm: float,
        centre_x_mm: float,
        centre_y_mm: float = 0.0,
        tilt_deg: float = 0.0,
        dist: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0),
    ) -> CameraModel:
        """A camera above the belt looking (nearly) straight down.

        Args:
            width_px: image width.
            height_px: image height.
            hfov_deg: horizontal field of view (across the belt).
            height_mm: height of the optical centre above the belt.
            centre_x_mm: lateral position of the optical centre.
            centre_y_mm: along-belt position of the optical centre.
            tilt_deg: rotation about the camera x-axis; positive looks downstream.
            dist: lens distortion.
        """
        f = (width_px / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        tilt = math.radians(tilt_deg)
        # camera axes in world coordinates: x_cam = X; z_cam tilted from +Z towards +Y
        rot_wc = rodrigues(np.array([-tilt, 0.0, 0.0]))  # camera->world
        rot = rot_wc.T  # world->camera
        centre = np.array([centre_x_mm, centre_y_mm, -height_mm])
        t = -rot @ centre
        rv = rotation_to_rvec(rot)
        return CameraModel(
            width_px=width_px,
            height_px=height_px,
            fx=f,
            fy=f,
            cx=(width_px - 1) / 2.0,
            cy=(height_px - 1) / 2.0,
            dist=dist,
            rvec=(float(rv[0]), float(rv[1]), float(rv[2])),
            tvec_mm=(float(t[0]), float(t[1]), float(t[2])),
        )

    # ------------------------------------------------------------------ matrices
    @property
    def k_matrix(self) -> F64:
        """3x3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def rotation(self) -> F64:
        """3x3 world->camera rotation."""
        return rodrigues(np.array(self.rvec))

    def homography(self) -> F64:
        """3x3 homography from belt-plane mm ``(x_mm, y_w_mm, 1)`` to *undistorted* pixels."""
        rot = self.rotation
        h = self.k_matrix @ np.column_stack([rot[:, 0], rot[:, 1], np.array(self.tvec_mm)])
        out: F64 = h / h[2, 2]
        return out

    # ------------------------------------------------------------------ distortion
    def distort_normalised(self, xy: F64) -> F64:
        """Apply lens distortion to normalised image coordinates ``(N, 2)``."""
        k1, k2, p1, p2, k3 = self.dist
        x = xy[:, 0]
        y = xy[:, 1]
        r2 = x * x + y * y
        radial = 1.0 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
        xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        return np.column_stack([xd, yd])

    def undistort_normalised(self, xyd: F64, iterations: int = 20) -> F64:
        """Invert :meth:`distort_normalised` by fixed-point iteration (as OpenCV does)."""
        if not any(self.dist):
            return xyd.copy()
        k1, k2, p1, p2, k3 = self.dist
        xy = xyd.copy()
        for _ in range(iterations):
            x = xy[:, 0]
            y = xy[:, 1]
            r2 = x * x + y * y
            radial = 1.0 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
            dx = 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
            dy = p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
            xy = np.column_stack([(xyd[:, 0] - dx) / radial, (xyd[:, 1] - dy) / radial])
        return xy

    # ------------------------------------------------------------------ mappings
    def belt_to_pixel(self, xy_mm: F64) -> F64:
        """Project belt-plane points ``(N, 2)`` (``x_mm``, ``y_w_mm``) to distorted pixels ``(N, 2)``."""
        pts = np.asarray(xy_mm, dtype=np.float64).reshape(-1, 2)
        rot = self.rotation
        cam = pts[:, 0:1] * rot[:, 0] + pts[:, 1:2] * rot[:, 1] + np.array(self.tvec_mm)
        z = cam[:, 2:3]
        norm = cam[:, :2] / z
        d = self.distort_normalised(norm)
        return np.column_stack([d[:, 0] * self.fx + self.cx, d[:, 1] * self.fy + self.cy])

    def pixel_to_belt(self, uv_px: F64) -> F64:
        """Back-project distorted pixels ``(N, 2)`` onto the belt plane, returning ``(N, 2)`` mm."""
        uv = np.asarray(uv_px, dtype=np.float64).reshape(-1, 2)
        xyd = np.column_stack([(uv[:, 0] - self.cx) / self.fx, (uv[:, 1] - self.cy) / self.fy])
        xy = self.undistort_normalised(xyd)
        h_inv = np.linalg.inv(self.homography())
        und = np.column_stack([xy[:, 0] * self.fx + self.cx, xy[:, 1] * self.fy + self.cy, np.ones(len(xy))])
        w = und @ h_inv.T
        out: F64 = w[:, :2] / w[:, 2:3]
        return out

    def view_extent_mm(self) -> tuple[float, float, float, float]:
        """Belt-plane bounding box of the image: ``(x_min, x_max, y_min, y_max)`` in mm.

        Samples the image border, so distortion and tilt are accounted for.
        """
        n = 32
        xs = np.linspace(0.0, self.width_px - 1.0, n)
        ys = np.linspace(0.0, self.height_px - 1.0, n)
        border = np.concatenate(
            [
                np.column_stack([xs, np.zeros(n)]),
                np.column_stack([xs, np.full(n, self.height_px - 1.0)]),
                np.column_stack([np.zeros(n), ys]),
                np.column_stack([np.full(n, self.width_px - 1.0), ys]),
            ]
        )
        w = self.pixel_to_belt(border)
        return float(w[:, 0].min()), float(w[:, 0].max()), float(w[:, 1].min()), float(w[:, 1].max())


@dataclass(frozen=True)
class CameraIntrinsics:
    """Lens and sensor model without a pose.

    Attributes:
        width_px: image width the calibration was made at.
        height_px: image height.
        fx: focal length along x, pixels.
        fy: focal length along y, pixels.
        cx: principal point x, pixels.
        cy: principal point y, pixels.
        dist: OpenCV ``(k1, k2, p1, p2, k3)``.
    """

    width_px: int
    height_px: int
    fx: float
    fy: float
    cx: float
    cy: float
    dist: tuple[float, float, float, float, float]

    @property
    def k_matrix(self) -> F64:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def dist_array(self) -> F64:
        return np.array(self.dist, dtype=np.float64)

    def with_pose(self, rvec: F64, tvec_mm: F64) -> CameraModel:
        """A :class:`CameraModel` with this lens and a world->camera pose."""
        r = np.asarray(rvec, dtype=np.float64).reshape(3)
        t = np.asarray(tvec_mm, dtype=np.float64).reshape(3)
        return CameraModel(
            width_px=self.width_px,
            height_px=self.height_px,
            fx=self.fx,
            fy=self.fy,
            cx=self.cx,
            cy=self.cy,
            dist=self.dist,
            rvec=(float(r[0]), float(r[1]), float(r[2])),
            tvec_mm=(float(t[0]), float(t[1]), float(t[2])),
        )

    @staticmethod
    def of(camera: CameraModel) -> CameraIntrinsics:
        return CameraIntrinsics(camera.width_px, camera.height_px, camera.fx, camera.fy, camera.cx, camera.cy, camera.dist)



def boxes_to_belt(camera: CameraModel, boxes_px: F64) -> tuple[F64, F64, F64, F64]:
    """Project axis-aligned pixel boxes onto the belt.

    The along-belt extent comes from the midpoints of the box's top and bottom
    edges, the lateral extent from the midpoints of its left and right edges:
    that is where a detector's box touches the object's outline. The box
    *corners* lie outside the outline, and under lens distortion their
    back-projection is biased by an amount that changes across the image, which
    a tracker would read as motion. Objects are treated as flat (their height
    above the belt is ignored).

    Args:
        camera: the camera model.
        boxes_px: ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.

    Returns:
        ``(x_mm, y_w_mm, length_mm, width_mm)`` arrays of shape ``(N,)``:
        centre position, extent along the belt, extent across the belt.
    """
    b = np.asarray(boxes_px, dtype=np.float64).reshape(-1, 4)
    n = b.shape[0]
    if n == 0:
        e = np.zeros(0)
        return e, e.copy(), e.copy(), e.copy()
    xm = (b[:, 0] + b[:, 2]) / 2.0
    ym = (b[:, 1] + b[:, 3]) / 2.0
    pts = np.stack(
        [
            np.column_stack([xm, b[:, 1]]),  # top edge midpoint
            np.column_stack([xm, b[:, 3]]),  # bottom edge midpoint
            np.column_stack([b[:, 0], ym]),  # left edge midpoint
            np.column_stack([b[:, 2], ym]),  # right edge midpoint
        ],
        axis=1,
    )  # (N, 4, 2)
    w = camera.pixel_to_belt(pts.reshape(-1, 2)).reshape(n, 4, 2)
    y_a, y_b = w[:, 0, 1], w[:, 1, 1]
    x_a, x_b = w[:, 2, 0], w[:, 3, 0]
    y_min, y_max = np.minimum(y_a, y_b), np.maximum(y_a, y_b)
    x_min, x_max = np.minimum(x_a, x_b), np.maximum(x_a, x_b)
    return (x_min + x_max) / 2.0, (y_min + y_max) / 2.0, y_max - y_min, x_max - x_min
