"""Columnar state of all live tracks and its Kalman filter (pure numpy).

Each track carries two independent constant-velocity filters over *belt
travel* (not time): along the belt ``[u_mm, du_per_mm]`` and across it
``[x_mm, dx_per_mm]``, where ``u_mm = y_w_mm - s_mm`` is belt-fixed. The
"velocity" is residual motion per mm of travel (a bottle rolling at 40 mm/s
on a 2.5 m/s belt has 0.016), so a belt speed change does not disturb the
filter: a stopped belt stops the prediction too.

Process noise over a travel step ``ds``: the residual velocity is a random
walk of variance ``sigma_r^2 / D`` per mm (``D = residual_change_travel_mm``),
and the position gets an extra ``(sigma_r * ds)^2`` for unmodelled slides,
the same growth as ``Track.predict``.

All tracks live in one float matrix, one int matrix and one vote matrix, so
every step is a handful of vectorised operations whatever the number of
tracks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sorter.entities import Track
from sorter.track.params import TrackerParams

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# float columns, the two axes side by side so one operation serves both filters
U, X = 0, 1  # position: belt-fixed along-belt, lateral
VU, VX = 2, 3  # residual velocity per mm of travel
PUU, PXX = 4, 5  # position variance
PUV, PXV = 6, 7  # position/velocity covariance
PVV, PVX = 8, 9  # velocity variance
LEN, WID = 10, 11  # extents along and across the belt
S_REF, SCORE_SUM = 12, 13
N_FLOAT = 14
POS, VEL, P00, P01, P11, SIZE = (slice(k, k + 2) for k in (U, VU, PUU, PUV, PVV, LEN))
# int columns
ID, T_FIRST, T_LAST, HITS, CONFIRMED = 0, 1, 2, 3, 4
N_INT = 5


def predict_filters(
    pos: F64, vel: F64, p00: F64, p01: F64, p11: F64, ds: F64, params: TrackerParams
) -> tuple[F64, F64, F64, F64]:
    """Predict constant-velocity filters over travel ``ds`` (elementwise, any shape).

    Returns:
        ``(pos, p00, p01, p11)`` predicted (the velocity itself does not change).
    """
    ads = np.abs(ds)
    q = params.residual_process_sigma**2 / params.residual_change_travel_mm
    slide = (params.residual_process_sigma * ds) ** 2
    pos_p = pos + vel * ds
    p00_p = p00 + 2.0 * ds * p01 + ds * ds * p11 + q * ads**3 / 3.0 + slide
    p01_p = p01 + ds * p11 + q * ds * ads / 2.0
    p11_p = p11 + q * ads
    return pos_p, p00_p, p01_p, p11_p


def cut_half_mm(d_size: F64, size: F64, ds: F64, params: TrackerParams) -> F64:
    """Centre shift explained by a change of extent, in mm.

    A box cut by the image border or by an overlapping object keeps its
    visible edge, so its centre moves by half the cut towards the visible
    side. A change within ``size_tolerance_mm`` is noise and explains no
    shift. Changes no cut can explain explain no shift either: a box cut by
    more than ``max_cut_fraction`` of the tracked extent (detectors do not
    report objects that hidden), or a track built from cut views growing by
    more than the belt travel ``ds`` since its last view can have uncovered
    (such a box more likely belongs to another object).

    Args:
        d_size: measured minus tracked extent.
        size: tracked extent.
        ds: belt travel since the track's last update (broadcast against ``d_size``).
        params: tolerances.
    """
    tol = params.size_tolerance_mm
    a = np.abs(d_size)
    plausible = np.where(d_size > 0, a <= np.abs(ds) + tol, a <= params.max_cut_fraction * size + tol)
    return np.where((a > tol) & plausible, a / 2.0, 0.0)


def cut_aware_distance2(d: F64, half: F64, var: F64, size: F64) -> F64:
    """Normalised squared distance of a centre residual ``d`` given a possible cut.

    Two explanations of a changed extent, the likelier one counts: a cut on
    one side (the residual should be ``half`` in magnitude), or a box grown or
    shrunk on both sides by the detector (centre nearly unchanged: extra
    spread of half the shift, at most ``SYMMETRIC_SIZE_NOISE`` of the extent).
    """
    one_side = (np.abs(d) - half) ** 2 / var
    sym = 0.5 * np.minimum(half, SYMMETRIC_SIZE_NOISE * size)  # uneven growth of the two sides moves the centre a little
    both_sides = d * d / (var + sym * sym)
    out: F64 = np.minimum(one_side, both_sides)
    return out


def edge_cut_dir(y_w_mm: F64, length_mm: F64, params: TrackerParams) -> F64:
    """Known cut side of each measured box from the camera view's along-belt ends.

    Returns:
        ``+1`` where the box reaches the upstream end of the view (the object
        is entering: its hidden part is upstream, so the box centre lies
        downstream of the object's), ``-1`` at the downstream end (leaving),
        ``0`` elsewhere, at both ends, or when the view ends are not given.
    """
    out = np.zeros_like(y_w_mm)
    m = params.view_edge_margin_mm
    if params.view_y_min_mm is not None:
        out += (y_w_mm - length_mm / 2.0) <= params.view_y_min_mm + m
    if params.view_y_max_mm is not None:
        out -= (y_w_mm + length_mm / 2.0) >= params.view_y_max_mm - m
    return out


def known_cut_shift(d_len: F64, cut_dir: F64) -> F64:
    """Correction of the along-belt innovation for boxes cut at a known view end.

    The residual ``measured - predicted`` minus this is free of the cut,
    whichever of the two boxes (measurement or track) was cut more.
    """
    out: F64 = -cut_dir * d_len / 2.0
    return out


#: share of an object's extent a detector may add or remove symmetrically
SYMMETRIC_SIZE_NOISE = 0.125


class TrackTable:
    """Structure-of-arrays storage of the live tracks, oldest first."""

    def __init__(self, params: TrackerParams) -> None:
        self.params = params
        self.f = np.zeros((0, N_FLOAT))
        self.i = np.zeros((0, N_INT), np.int64)
        self.votes = np.zeros((0, params.n_classes))
        # frozen Track of each row, None once the row changed; unmatched tracks are not rebuilt
        self._cache: list[Track | None] = []

    def __len__(self) -> int:
        return int(self.f.shape[0])

    # ------------------------------------------------------------------ prediction
    def predict(self, s_mm: float) -> tuple[F64, F64, F64, F64]:
        """Predict every track's filters to odometer ``s_mm``.

        Returns:
            ``(pos, p00, p01, p11)``, each ``(T, 2)`` with columns (along, across):
            predicted centre ``(u_mm, x_mm)``, its variance, the position/velocity
            covariance and the velocity variance.
        """
        f = self.f
        ds = (s_mm - f[:, S_REF])[:, None]
        return predict_filters(f[:, POS], f[:, VEL], f[:, P00], f[:, P01], f[:, P11], ds, self.params)

    # ------------------------------------------------------------------ update
    def correct(
        self,
        rows: I64,
        predicted: tuple[F64, F64, F64, F64],
        s_mm: float,
        t_ns: int,
        z_u: F64,
        z_x: F64,
        length: F64,
        width: F64,
        scores: F64,
        class_ids: npt.NDArray[np.int32],
        cut_dir: F64,
    ) -> None:
        """Fuse one measurement into each of ``rows`` (vectorised Kalman update).

        ``predicted`` is :meth:`predict` at ``s_mm`` for every row.

        A measured extent that differs from the track's by more than
        ``size_tolerance_mm`` means one of the two boxes was cut (image
        border, occlusion), which shifts its centre by half the cut towards
        its visible side. A shorter measurement is moved back by half the
        difference; a longer one means the *track* was built from cut views,
        so the track's centre is moved instead (an object entering the view
        grows frame by frame). Where the box reaches an end of the camera
        view (``cut_dir``, see :func:`edge_cut_dir`) the cut side is known and
        the whole length difference is used; elsewhere the side is taken from
        the innovation's sign, changes within the tolerance are ignored, and a
        little variance is added for the risk of guessing wrong.
        """
        if rows.size == 0:
            return
        p = self.params
        f = self.f
        sub = f[rows]
        tol = p.size_tolerance_mm
        z = np.column_stack([z_u, z_x])
        pos, p00, p01, p11 = (a[rows] for a in predicted)
        d_size = np.column_stack([length, width]) - sub[:, SIZE]
        ds = (s_mm - sub[:, S_REF])[:, None]
        half = cut_half_mm(d_size, sub[:, SIZE], ds, p)
        grew = d_size > 0
        # move whichever centre came from the cut box by half the cut towards the other one,
        # never past it (a box grown on both sides moves nothing)
        innov = z - pos
        shift = np.sign(innov) * np.minimum(half, np.abs(innov))
        risk = (half / 2.0) ** 2  # the cut side was guessed from the innovation's sign
        known = cut_dir != 0
        shift[:, 0] = np.where(known, known_cut_shift(d_size[:, 0], cut_dir), shift[:, 0])
        risk[:, 0] = np.where(known, (tol / 4.0) ** 2, risk[:, 0])
        pos = pos + np.where(grew, shift, 0.0)
        p00 = p00 + np.where(grew, risk, 0.0)
        r = p.measurement_sigma_mm**2 + np.where(grew, 0.0, risk)
        innov = innov - shift  # same residual whichever centre moved
        s_inn = p00 + r
        k0 = p00 / s_inn
        k1 = p01 / s_inn
        # a box cut at a view end says where the object is, but its centre moves with the
        # cut as the object enters or leaves: learning a residual velocity from it invents
        # a drift that is then extrapolated to the ejection line. Only full views teach it.
        k1[:, 0] = np.where(known, 0.0, k1[:, 0])
        sub[:, POS] = pos + k0 * innov
        sub[:, VEL] = np.clip(sub[:, VEL] + k1 * innov, -p.max_residual_per_mm, p.max_residual_per_mm)
        sub[:, P00] = (1.0 - k0) * p00
        sub[:, P01] = (1.0 - k0) * p01
        sub[:, P11] = p11 - k1 * p01
        # extents: smooth within tolerance, jump up to a larger view (it is less cut), creep down slowly
        gain = np.where(np.abs(d_size) <= tol, 0.3, np.where(grew, 1.0, 0.1))
        # at a view end the box shows what is visible: follow it while the object enters, keep the full length as it leaves
        gain[:, 0] = np.where(known, np.where(grew[:, 0], 1.0, 0.0), gain[:, 0])
        sub[:, SIZE] += gain * d_size
        sub[:, S_REF] = s_mm
        sub[:, SCORE_SUM] += scores
        f[rows] = sub
        cache = self._cache
        for row in rows.tolist():
            cache[row] = None
        ii = self.i
        ii[rows, T_LAST] = t_ns
        ii[rows, HITS] += 1
        ii[rows[ii[rows, HITS] >= p.min_hits], CONFIRMED] = 1
        self.votes[rows, class_ids.astype(np.int64)] += scores  # rows are unique

    def append(
        self,
        ids: I64,
        s_mm: float,
        t_ns: int,
        z_u: F64,
        z_x: F64,
        length: F64,
        width: F64,
        scores: F64,
        class_ids: npt.NDArray[np.int32],
    ) -> None:
        """Start one new track per measurement."""
        n = ids.size
        if n == 0:
            return
        p = self.params
        r0 = p.measurement_sigma_mm**2
        v0 = p.initial_residual_sigma**2
        f = np.zeros((n, N_FLOAT))
        f[:, U] = z_u
        f[:, X] = z_x
        f[:, PUU] = r0
        f[:, PXX] = r0
        f[:, PVV] = v0
        f[:, PVX] = v0
        f[:, LEN] = length
        f[:, WID] = width
        f[:, S_REF] = s_mm
        f[:, SCORE_SUM] = scores
        ii = np.zeros((n, N_INT), np.int64)
        ii[:, ID] = ids
        ii[:, T_FIRST] = t_ns
        ii[:, T_LAST] = t_ns
        ii[:, HITS] = 1
        ii[:, CONFIRMED] = 1 if p.min_hits <= 1 else 0
        votes = np.zeros((n, p.n_classes))
        votes[np.arange(n), class_ids.astype(np.int64)] = scores
        self.f = np.concatenate([self.f, f])
        self.i = np.concatenate([self.i, ii])
        self.votes = np.concatenate([self.votes, votes])
        self._cache.extend([None] * n)

    def remove(self, keep: npt.NDArray[np.bool_]) -> None:
        """Keep only the rows where ``keep`` is true (order preserved)."""
        self.f = self.f[keep]
        self.i = self.i[keep]
        self.votes = self.votes[keep]
        self._cache = [c for c, k in zip(self._cache, keep.tolist(), strict=True) if k]

    # ------------------------------------------------------------------ export
    def to_tracks(self, rows: I64 | None = None) -> list[Track]:
        """Frozen :class:`Track` entities for ``rows`` (all when ``None``), in row order.

        ``class_confidence`` is the vote share of the winning class times the
        mean detection score, which equals the winning class's summed score
        divided by the number of hits: the average support each detection gave
        to that class (a detection of another class supports it with 0).

        Entities of rows unchanged since the last call are reused.
        """
        cache = self._cache
        wanted = range(len(cache)) if rows is None else rows.tolist()
        stale = [r for r in wanted if cache[r] is None]
        if stale:
            idx = np.asarray(stale, np.int64)
            for r, track in zip(stale, self._build(idx), strict=True):
                cache[r] = track
        return [cache[r] for r in wanted]  # type: ignore[misc]

    def _build(self, rows: I64) -> list[Track]:
        f = self.f[rows]
        ii = self.i[rows]
        votes = self.votes[rows]
        cls = np.argmax(votes, axis=1)
        win = votes[np.arange(votes.shape[0]), cls]
        conf = win / np.maximum(ii[:, HITS], 1)
        fc = f.T.tolist()
        vel = f[:, VEL]
        # Report a residual velocity only when it is significant: a still object's
        # estimate is noise, and extrapolating noise over the metre to the ejection
        # line costs millimetres.
        significant = np.abs(vel) > self.params.min_residual_per_mm
        vel_eff = np.where(significant, vel, 0.0).T.tolist()
        ic = ii.T.tolist()
        # positional, in Track's field order (faster than keywords for a frozen dataclass)
        return list(
            map(
                Track,
                ic[ID],
                cls.tolist(),
                conf.tolist(),
                map(tuple, votes.tolist()),
                fc[U],
                fc[X],
                vel_eff[0],
                vel_eff[1],
                fc[LEN],
                fc[WID],
                np.sqrt(f[:, PUU]).tolist(),
                np.sqrt(f[:, PXX]).tolist(),
                fc[S_REF],
                ic[T_FIRST],
                ic[T_LAST],
                ic[HITS],
                map(bool, ic[CONFIRMED]),
            )
        )
