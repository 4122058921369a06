"""Belt-frame multi-object tracker.

Association happens in belt-fixed coordinates: a measurement at world
``y_w_mm`` taken when the odometer read ``s_capture_mm`` lies at
``u_mm = y_w_mm - s_capture_mm``, and every track is predicted (with its
residual motion) to that same odometer value. Time plays no part in where
things are, so belt speed changes and stops do not disturb association; time
only ages tracks (a stopped belt still retires a track nobody sees).

One update: retire tracks unseen for too long, predict every track
(``motion.py``), gate every (track, measurement) pair and cost the ambiguous
ones (``gate.py``), assign (``assign.py``), correct the matched tracks and start
new ones (``state.py``), and copy the tracks out as read-only columns
(:class:`~sorter.entities.TrackColumns`: consumers build ``Track`` entities of
the few tracks they act upon). Every step works on all tracks, all
measurements or all gated pairs at once (numpy arrays, no loop over tracks):
an update costs a fixed number of numpy calls whatever the scene, plus one
``Track`` per retired track. :attr:`BeltTracker.stats` counts the work of the
last update.

A track is confirmed (may be acted upon) on evidence, not on a frame count:
``min_hits`` detections, or ``confirm_hits`` detections in consecutive frames
spanning ``confirm_travel_mm`` of belt travel (an object seen twice by a slow
loop), or optionally one detection scoring ``confirm_single_score`` (see
``params.py``); and, where the view ends are known, only once one of its boxes
was not cut at an end of the view (``confirm_needs_full_view``): a track made
of an entering object's growing boxes alone, left behind when the first full
view jumped, is never acted upon.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Literal

import numpy as np
import numpy.typing as npt

from sorter.entities import BeltMeasurements, Track
from sorter.track.assign import load_solver, match_pairs
from sorter.track.gate import (
    MEAS_CUT,
    MEAS_SIZE,
    MEAS_Z,
    N_MEAS,
    REACH_MARGIN_MM,
    SIZE_COST_CAP,
    VOTE_PRIOR,
    gate_pairs,
    pair_costs,
)
from sorter.track.motion import N_PRED, PRED_DS, SYMMETRIC_SIZE_NOISE, edge_cut_dir
from sorter.track.params import TrackerOutput, TrackerParams, UpdateStats
from sorter.track.state import CONFIRMED, ID, S_REF, T_LAST, TrackTable

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_MIN_EXTENT_MM = 1.0
_NONE = np.zeros(0, np.int64)


def _f64(a: npt.ArrayLike) -> F64:
    """``a`` as the compiled kernels take it: float64, C-contiguous, writeable (a copy only when it is not).

    numba compiles one version of a kernel per array type, layout and read-only flag: a strided view or a
    frozen array in the middle of a run would compile a new version in the loop, for seconds.
    """
    out = np.asarray(a, np.float64)
    if not (out.flags.c_contiguous and out.flags.writeable):
        out = np.array(out, np.float64, order="C")
    return out


def _i64(a: npt.ArrayLike) -> I64:
    """``a`` as int64, C-contiguous, writeable (see :func:`_f64`)."""
    out = np.asarray(a, np.int64)
    if not (out.flags.c_contiguous and out.flags.writeable):
        out = np.array(out, np.int64, order="C")
    return out


Kernels = Literal["auto", "compiled", "numpy"]
#: environment variable that overrides the ``kernels`` argument of every tracker (``numpy`` or ``compiled``)
KERNELS_ENV = "SORTER_TRACKER_KERNELS"


def load_kernels(kernels: Kernels = "auto") -> ModuleType | None:
    """The compiled kernels module (``compiled.py``), or ``None`` for the numpy implementation.

    ``auto`` uses the compiled kernels where numba is installed and works, and
    numpy otherwise (logged once); ``compiled`` requires them; ``numpy`` never
    uses them. The environment variable ``SORTER_TRACKER_KERNELS`` overrides
    the argument. Both give the same results bit for bit.

    Raises:
        ValueError: on an unknown choice.
        ImportError: for ``compiled`` without numba.
    """
    choice = kernels_choice(kernels)
    if choice == "numpy":
        return None
    try:
        from sorter.track import compiled
    except Exception as exc:  # ImportError without numba; numba's own errors (an unsupported numpy) alike
        if choice == "compiled":
            raise ImportError(f"the compiled tracker kernels need numba ({exc}); pip install numba") from exc
        _fall_back(f"numba is not installed or does not load ({exc})")
        return None
    return compiled


def kernels_choice(kernels: Kernels) -> Kernels:
    """The implementation asked for: ``SORTER_TRACKER_KERNELS`` when set, else ``kernels``."""
    choice = os.environ.get(KERNELS_ENV) or kernels
    if choice not in ("auto", "compiled", "numpy"):
        raise ValueError(f"tracker kernels {choice!r} unknown (from {KERNELS_ENV} or the argument); use auto, compiled or numpy")
    out: Kernels = choice  # type: ignore[assignment]
    return out


def _fall_back(why: str) -> None:
    if not _warned_no_numba:
        _warned_no_numba.append(True)
        logger.warning("%s: the tracker runs its numpy implementation, 2-3x slower, same results", why)


_warned_no_numba: list[bool] = []


def _kernel_params(p: TrackerParams, mod: ModuleType, confirm_first: bool) -> npt.NDArray[np.float64]:
    """The float parameters the compiled kernels read (``compiled.K_*``), computed as the numpy code computes them."""
    k = np.zeros(mod.N_K)
    k[mod.K_Q] = p.residual_process_sigma**2 / p.residual_change_travel_mm
    k[mod.K_SIGMA_R] = p.residual_process_sigma
    k[mod.K_R0] = p.measurement_sigma_mm**2
    k[mod.K_GATE2] = p.gate_mm**2
    k[mod.K_REACH] = p.gate_mm + REACH_MARGIN_MM
    k[mod.K_CHI2] = p.gate_chi2
    k[mod.K_TOL] = p.size_tolerance_mm
    k[mod.K_MAX_CUT] = p.max_cut_fraction
    k[mod.K_SYM] = SYMMETRIC_SIZE_NOISE
    k[mod.K_RISK_KNOWN] = (p.size_tolerance_mm / 4.0) ** 2
    k[mod.K_MAX_RES] = p.max_residual_per_mm
    k[mod.K_INIT_RES2] = p.initial_residual_sigma**2
    k[mod.K_MIN_HITS] = p.min_hits
    k[mod.K_CONFIRM_HITS] = p.confirm_hits
    k[mod.K_CONFIRM_TRAVEL] = p.confirm_travel_mm
    k[mod.K_NEEDS_FULL] = 1.0 if p.confirm_needs_full_view else 0.0
    k[mod.K_SIZE_LOG_SIGMA2] = p.size_log_sigma**2
    k[mod.K_CLASS_WEIGHT] = p.class_weight
    k[mod.K_TENTATIVE_PENALTY] = p.tentative_penalty
    k[mod.K_VOTE_PRIOR] = VOTE_PRIOR
    k[mod.K_VOTE_PRIOR_ALL] = VOTE_PRIOR * p.n_classes
    k[mod.K_SIZE_COST_CAP] = SIZE_COST_CAP
    k[mod.K_SINGLE_SCORE] = np.nan if p.confirm_single_score is None else p.confirm_single_score
    k[mod.K_CONFIRM_FIRST] = 1.0 if confirm_first else 0.0
    return k


class BeltTracker:
    """Tracks objects on the belt from per-frame belt-plane measurements.

    Not thread-safe: call :meth:`update` from one thread, once per frame, with
    frames in capture order.

    Attributes:
        stats: work counters of the last :meth:`update`.
    """

    def __init__(self, params: TrackerParams | None = None, kernels: Kernels = "auto", *, warm_up: bool = True) -> None:
        """Args:
        params: tracker settings.
        kernels: ``auto`` (compiled kernels where numba is installed), ``compiled`` or ``numpy``;
            see :func:`load_kernels`. Results are the same bit for bit.
        warm_up: compile the kernels (or load them from numba's cache) now, with a few
            updates of a probe tracker, rather than in the first frame.
        """
        self.params = params or TrackerParams()
        self._kernels = load_kernels(kernels)
        p = self.params
        self._table = TrackTable(p, self._kernels)
        self._k = None if self._kernels is None else _kernel_params(p, self._kernels, self._table.confirm_first)
        lo, hi, margin = p.view_y_min_mm, p.view_y_max_mm, p.view_edge_margin_mm
        self._view = np.array(  # the view ends as motion.edge_cut_dir compares with them (compiled kernels)
            (lo is not None, 0.0 if lo is None else lo + margin, hi is not None, 0.0 if hi is None else hi - margin), np.float64
        )
        self._next_id = 1
        self._last_s_mm: float | None = None
        self._last_t_ns: int | None = None
        self.stats = UpdateStats()
        self._columns = self._table.columns()  # the tracks as the last update handed them out
        p = self.params
        tentative_mm = min(p.tentative_max_unseen_travel_mm, p.max_unseen_travel_mm)
        self._max_unseen_travel_mm = np.array((tentative_mm, p.max_unseen_travel_mm))  # by confirmation: 0 tentative, 1 confirmed
        load_solver()  # import the solver at start-up, not in the first frame with touching objects
        if self._kernels is not None and warm_up:
            try:
                self._warm_up(kernels)
            except Exception as exc:  # a kernel that does not compile here (numba and numpy versions)
                if kernels_choice(kernels) == "compiled":
                    raise
                _fall_back(f"the compiled tracker kernels failed to build ({type(exc).__name__}: {exc})")
                self._kernels = self._k = None
                self._table = TrackTable(p)

    @property
    def compiled(self) -> bool:
        """Whether updates run the compiled kernels (else numpy)."""
        return self._kernels is not None

    def _warm_up(self, kernels: Kernels) -> None:
        """Compile (or load from the cache) every kernel at construction, not in the first frame that needs it.

        A probe tracker follows two boxes 10 mm apart in the middle of the view, so that from its second frame each
        gates both tracks and the solver's path runs too.

        Raises:
            RuntimeError: a kernel was not reached (the probe no longer covers the update).
        """
        p = self.params
        lo, hi = p.view_y_min_mm, p.view_y_max_mm
        if lo is not None and hi is not None:
            y_mm = (lo + hi) / 2.0
        else:
            y_mm = lo + 500.0 if lo is not None else (hi - 500.0 if hi is not None else 0.0)
        probe = BeltTracker(p, kernels, warm_up=False)
        for k in range(3):
            s_mm = 20.0 * k
            probe.update(
                BeltMeasurements(
                    t_capture_ns=k * 16_000_000,
                    s_capture_mm=s_mm,
                    x_mm=np.array([0.0, 10.0]),
                    y_w_mm=np.array([y_mm - 20.0 + s_mm, y_mm - 20.0 + s_mm]),
                    length_mm=np.array([60.0, 60.0]),
                    width_mm=np.array([50.0, 50.0]),
                    class_ids=np.array([0, 0], np.int64),
                    scores=np.array([0.9, 0.9]),
                )
            )
        kern = self._kernels
        assert kern is not None
        missing = [name for name in kern.KERNELS if not getattr(kern, name).signatures]
        if missing:
            raise RuntimeError(f"the tracker's warm-up did not reach the kernels {missing}")

    @property
    def n_live(self) -> int:
        """Number of live tracks (tentative included)."""
        return len(self._table)

    def update(self, meas: BeltMeasurements) -> TrackerOutput:
        """Fuse one frame's measurements and age the tracks.

        Args:
            meas: the frame's detections on the belt plane, stamped with the
                exposure time and odometer.

        Returns:
            Live tracks after the update and the tracks retired by it.

        Raises:
            ValueError: if a class id is outside ``[0, n_classes)`` or the
                measurement arrays have different lengths.
        """
        p = self.params
        s_mm = float(meas.s_capture_mm)
        t_ns = int(meas.t_capture_ns)
        self._check(meas, s_mm)
        t_prev_ns = self._last_t_ns
        self._last_s_mm, self._last_t_ns = s_mm, t_ns
        table = self._table
        retired = self._retire(s_mm, t_ns, t_prev_ns)

        n_meas = len(meas)
        n_tracks = len(table)
        y_w = np.asarray(meas.y_w_mm, np.float64)
        if self._kernels is not None:
            m_tab = self._kernels.measurements(
                _f64(y_w), _f64(meas.x_mm), _f64(meas.length_mm), _f64(meas.width_mm), s_mm, _MIN_EXTENT_MM, self._view
            )
            scores, class_ids = _f64(meas.scores), _i64(meas.class_ids)
        else:
            m_tab = np.empty((N_MEAS, n_meas))  # the gate's MEAS_* rows
            z = m_tab[MEAS_Z]  # (2, M): belt-fixed centres (u_mm, x_mm)
            np.subtract(y_w, s_mm, out=z[0])
            z[1] = meas.x_mm
            size = m_tab[MEAS_SIZE]  # (2, M): extents
            size[0] = meas.length_mm
            size[1] = meas.width_mm
            np.maximum(size, _MIN_EXTENT_MM, out=size)
            if n_meas:
                edge_cut_dir(y_w, size[0], p, out=m_tab[MEAS_CUT])
            scores = np.asarray(meas.scores, np.float64)
            class_ids = np.asarray(meas.class_ids)

        matched_t = matched_m = _NONE
        n_pairs = n_solved = 0
        if n_tracks and n_meas and self._kernels is not None:
            matched_t, matched_m, n_pairs, n_solved = self._associate_compiled(m_tab, class_ids, scores, s_mm, t_ns, t_prev_ns)
        elif n_tracks and n_meas:
            pred = table.predict(s_mm)
            pairs = gate_pairs(pred, m_tab, p)
            n_pairs = pairs.size

            def costs(idx: I64) -> F64:
                return pair_costs(idx, pairs, pred, table.votes, table.i[CONFIRMED], m_tab, class_ids, p)

            idx, n_solved = match_pairs(pairs.rows, pairs.cols, n_tracks, n_meas, costs)
            if idx is None:  # every gated pair matched
                matched_t, matched_m, pair_table = pairs.rows, pairs.cols, pairs.table
            else:
                matched_t, matched_m, pair_table = pairs.rows.take(idx), pairs.cols.take(idx), pairs.table.take(idx, 1)
            table.correct(
                matched_t,
                pred.take(matched_t, 1),
                pair_table,
                s_mm,
                t_ns,
                t_prev_ns,
                scores.take(matched_m),
                class_ids.take(matched_m),
            )
        n_new = n_meas - matched_m.size
        if self._kernels is not None:
            table.reserve(len(table) + n_new)
            meas_ids, n_started = self._kernels.start_tracks(
                table.buf_f, table.buf_i, table.buf_votes, len(table), m_tab, matched_t, matched_m, self._next_id,
                s_mm, t_ns, scores, class_ids, self._k,
            )  # fmt: skip
            table.extend(n_started)
            self._next_id += n_started
        else:
            meas_ids = np.zeros(n_meas, np.int64)  # 0 (no track id) until matched or started
            meas_ids[matched_m] = table.i[ID].take(matched_t)
            if n_new:
                idx_new = (meas_ids == 0).nonzero()[0]
                ids = np.arange(self._next_id, self._next_id + n_new, dtype=np.int64)
                self._next_id += n_new
                meas_ids[idx_new] = ids
                m_new = m_tab.take(idx_new, 1)
                full_view = m_new[MEAS_CUT] == 0
                table.append(
                    ids, s_mm, t_ns, m_new[MEAS_Z], m_new[MEAS_SIZE], scores.take(idx_new), class_ids.take(idx_new), full_view
                )
        self.stats = UpdateStats(
            n_tracks=n_tracks,
            n_measurements=n_meas,
            n_pairs=n_pairs,
            n_solved=n_solved,
            n_matched=int(matched_m.size),
            n_new=n_new,
            n_retired=len(retired),
        )
        self._columns = table.columns()
        return TrackerOutput(active=self._columns, retired=retired, meas_track_ids=tuple(meas_ids.tolist()))

    # ------------------------------------------------------------------ steps
    def _associate_compiled(
        self,
        m_tab: F64,
        class_ids: npt.NDArray[np.integer],
        scores: F64,
        s_mm: float,
        t_ns: int,
        t_prev_ns: int | None,
    ) -> tuple[I64, I64, int, int]:
        """Predict, gate, assign and correct with the compiled kernels (the numpy branch of :meth:`update`, bit for bit).

        Returns:
            ``(matched_t, matched_m, n_pairs, n_solved)``.
        """
        kern, k = self._kernels, self._k
        assert kern is not None and k is not None
        table = self._table
        n = len(table)
        pred = np.empty((N_PRED, n))
        ds = np.subtract(s_mm, table.f[S_REF], out=pred[PRED_DS])
        ads3 = np.abs(ds) ** 3  # numpy's power, as motion.predict_filters computes it
        n_meas = m_tab.shape[1]
        cls = _i64(class_ids)
        rows, cols, pair_table = kern.predict_gate(table.buf_f, n, ads3, m_tab, n_meas, k, pred)
        n_solved = 0
        simple, hard, r_loc, c_loc, n_r, n_c = kern.split_pairs(rows, cols, n, n_meas)
        if hard.size == 0:  # every gated pair matched (the usual case)
            pair_idx = simple
            matched_t, matched_m = rows, cols
        else:  # as assign.match_pairs does it, with the costs of gate.pair_costs
            n_solved = int(hard.size)
            r0 = self.params.measurement_sigma_mm**2
            votes = table.votes
            vote_sums = np.add.reduce(votes.take(rows.take(hard), 0), 1)  # numpy's sums over the same rows as pair_costs
            args = kern.cost_args(hard, rows, cols, pred, m_tab, r0, r0**2, votes, vote_sums, cls, k)
            h_cost = kern.costs_from_logs(hard, rows, pair_table, np.log(args), table.buf_i, k)
            forbidden = 2.0 * float(np.add.reduce(np.abs(h_cost))) + 1.0  # numpy's sum, as match_pairs has it
            sr, sc = load_solver()(kern.solver_matrix(r_loc, c_loc, n_r, n_c, h_cost, forbidden))
            pair_idx = kern.matched_pairs(simple, hard, r_loc, c_loc, n_r, n_c, sr.astype(np.int64), sc.astype(np.int64))
            matched_t, matched_m = rows.take(pair_idx), cols.take(pair_idx)
        kern.correct(
            table.buf_f,
            table.buf_i,
            table.buf_votes,
            matched_t,
            matched_m,
            pair_idx,
            pred,
            pair_table,
            s_mm,
            t_ns,
            t_prev_ns is not None,
            0 if t_prev_ns is None else t_prev_ns,
            scores,
            cls,
            k,
        )
        return matched_t, matched_m, int(rows.size), n_solved

    def _check(self, meas: BeltMeasurements, s_mm: float) -> None:
        n = len(meas)
        lengths = {a.shape[0] for a in (meas.x_mm, meas.y_w_mm, meas.length_mm, meas.width_mm, meas.class_ids)}
        if lengths - {n}:
            raise ValueError(
                f"BeltMeasurements arrays have different lengths ({sorted(lengths | {n})}); "
                "build every column from the same detections"
            )
        if n and (int(np.minimum.reduce(meas.class_ids)) < 0 or int(np.maximum.reduce(meas.class_ids)) >= self.params.n_classes):
            raise ValueError(
                f"class ids {sorted(set(meas.class_ids.tolist()))} outside [0, {self.params.n_classes}); "
                "set TrackerParams.n_classes to the detector's number of classes"
            )
        if self._last_s_mm is not None and s_mm < self._last_s_mm - 1e-6:
            logger.warning("odometer went backwards (%.1f -> %.1f mm); check the encoder direction", self._last_s_mm, s_mm)

    def _retire(self, s_mm: float, t_ns: int, t_prev_ns: int | None) -> tuple[Track, ...]:
        """Remove tracks unseen for too long (time) or too far (belt travel).

        A track detected in the previous frame is never retired: it gets this
        frame to be seen again, however long the step from that frame (a slow
        loop, dropped frames). The limits count beyond that step.
        """
        table = self._table
        if not len(table):
            return ()
        p = self.params
        if self._kernels is not None:
            aged_idx = table.retire_compiled(
                s_mm, t_ns - p.max_unseen_ns, t_prev_ns, self._max_unseen_travel_mm
            )  # removed already; the handed-out columns are copies, unchanged
            return tuple(map(self._columns.__getitem__, aged_idx.tolist())) if aged_idx.size else ()
        ii = table.i
        t_last = ii[T_LAST]
        max_travel = self._max_unseen_travel_mm.take(ii[CONFIRMED])  # by confirmation: tentative, confirmed
        aged = np.subtract(s_mm, table.f[S_REF]) > max_travel
        aged |= t_last < t_ns - p.max_unseen_ns
        if t_prev_ns is not None:
            aged &= t_last != t_prev_ns
        if not np.count_nonzero(aged):
            return ()
        # unchanged since the last update handed them out: their entities come from those columns
        out = tuple(map(self._columns.__getitem__, aged.nonzero()[0].tolist()))
        table.remove(~aged)
        return out
