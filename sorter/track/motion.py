"""Motion and measurement model of the belt-frame tracker (pure numpy, elementwise).

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

Measured boxes may be cut (image border, an overlapping object), which moves
their centre; the functions below say by how much, and from which side when
the box reaches an end of the camera view.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sorter.track.params import TrackerParams

F64 = npt.NDArray[np.float64]

#: rows of the predicted table filled by :func:`predict_filters`, each a pair (along, across) but ``PRED_DS``:
#: predicted position, tracked extent, position variance, travel since the last update, covariance, velocity variance
PRED_POS, PRED_SIZE, PRED_P00 = (slice(k, k + 2) for k in (0, 2, 4))
PRED_DS = 6
PRED_P01, PRED_P11 = (slice(k, k + 2) for k in (7, 9))
N_PRED = 11

#: share of an object's extent a detector may add or remove symmetrically
SYMMETRIC_SIZE_NOISE = 0.125


def predict_filters(pos: F64, vel: F64, p00: F64, p01: F64, p11: F64, out: F64, params: TrackerParams) -> F64:
    """Predict constant-velocity filters over the travel ``out[PRED_DS]``.

    Quantities of the two filters are ``(2, n)`` arrays: row 0 along the belt,
    row 1 across it, one column per track.

    Args:
        pos, vel, p00, p01, p11: ``(2, n)`` position, residual velocity,
            position variance, position/velocity covariance and velocity
            variance.
        out: ``(N_PRED, n)`` table whose ``PRED_DS`` row holds each track's
            travel; the predicted ``pos``, ``p00``, ``p01``, ``p11`` are written
            to the row pairs ``PRED_POS``, ``PRED_P00``, ``PRED_P01``,
            ``PRED_P11`` (the velocity itself does not change), so that a
            single gather picks every prediction of a set of tracks. The
            caller fills ``PRED_SIZE``.
        params: noise settings.

    Returns:
        ``out``.
    """
    ds = out[PRED_DS]
    ads = np.abs(ds)
    sigma_r = params.residual_process_sigma
    q = sigma_r**2 / params.residual_change_travel_mm
    np.add(pos, vel * ds, out=out[PRED_POS])
    p00_p = out[PRED_P00]
    np.add(p00, 2.0 * ds * p01, out=p00_p)
    p00_p += ds * ds * p11
    p00_p += q * ads**3 / 3.0
    p00_p += (sigma_r * ds) ** 2  # unmodelled slides
    p01_p = out[PRED_P01]
    np.add(p01, ds * p11, out=p01_p)
    p01_p += q * ds * ads / 2.0
    np.add(p11, q * ads, out=out[PRED_P11])
    return out


def cut_half_mm(d_size: F64, abs_d_size: F64, size: F64, ds: F64, params: TrackerParams, out: F64 | None = None) -> F64:
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
        d_size: ``(2, n)`` measured minus tracked extent.
        abs_d_size: ``abs(d_size)`` (the caller has it already).
        size: ``(2, n)`` tracked extent.
        ds: ``(n,)`` belt travel since the track's last update.
        params: tolerances.
        out: where to write the result (a new array when ``None``).
    """
    tol = params.size_tolerance_mm
    limit = np.where(d_size > 0, np.abs(ds) + tol, params.max_cut_fraction * size + tol)
    explained = (abs_d_size > tol) & (abs_d_size <= limit)
    half: F64 = np.multiply(abs_d_size / 2.0, explained, out=out)
    return half


def cut_aware_distance2(d: F64, excess: F64, half: F64, var: F64, size: F64) -> F64:
    """Normalised squared distance of a centre residual ``d`` given a possible cut.

    Two explanations of a changed extent, the likelier one counts: a cut on
    one side (the residual should be ``half`` in magnitude), or a box grown or
    shrunk on both sides by the detector (centre nearly unchanged: extra
    spread of half the shift, at most ``SYMMETRIC_SIZE_NOISE`` of the extent).

    Args:
        d: centre residual.
        excess: ``abs(d) - half`` (the caller has it already).
        half: centre shift a cut explains (:func:`cut_half_mm`).
        var: variance of the residual.
        size: tracked extent.
    """
    one_side = excess * excess / var
    sym = 0.5 * np.minimum(half, SYMMETRIC_SIZE_NOISE * size)  # uneven growth of the two sides moves the centre a little
    both_sides = d * d / (var + sym * sym)
    out: F64 = np.minimum(one_side, both_sides)
    return out


def edge_cut_dir(y_w_mm: F64, length_mm: F64, params: TrackerParams, out: F64 | None = None) -> F64:
    """Known cut side of each measured box from the camera view's along-belt ends.

    Returns:
        ``+1`` where the box reaches the upstream end of the view (the object
        is entering: its hidden part is upstream, so the box centre lies
        downstream of the object's), ``-1`` at the downstream end (leaving),
        ``0`` elsewhere, at both ends, or when the view ends are not given
        (written to ``out`` when given).
    """
    m = params.view_edge_margin_mm
    lo, hi = params.view_y_min_mm, params.view_y_max_mm
    if lo is None and hi is None:
        if out is None:
            return np.zeros_like(y_w_mm)
        out.fill(0.0)
        return out
    half_len = length_mm / 2.0
    entering = (y_w_mm - half_len) <= lo + m if lo is not None else False
    leaving = (y_w_mm + half_len) >= hi - m if hi is not None else False
    cut: F64 = np.subtract(entering, leaving, dtype=np.float64, out=out)
    return cut


def leaving_lateral_slack_mm(d_len: F64, length_mm: F64, width_mm: F64) -> F64:
    """How far the lateral centre of a box cut at the downstream view end may lie from the object's.

    The box covers the part still in view. For an object lying askew that part
    lies towards one side: its lateral centre moves by at most half the width
    times the share of the length already out of view (``-d_len / length``,
    from the tracked full length).
    """
    hidden = np.clip(-d_len / np.maximum(length_mm, 1.0), 0.0, 1.0)
    out: F64 = 0.5 * width_mm * hidden
    return out


def known_cut_shift(d_len: F64, cut_dir: F64) -> F64:
    """Correction of the along-belt innovation for boxes cut at a known view end.

    The residual ``measured - predicted`` minus this is free of the cut,
    whichever of the two boxes (measurement or track) was cut more.
    """
    out: F64 = -cut_dir * d_len / 2.0
    return out
