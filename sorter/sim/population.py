"""The objects currently on the virtual belt, as columns for vectorised position queries."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sorter.sim.objects import ObjectSpec

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

_COLUMNS = ("u", "x0", "t_birth", "vx", "ax", "vy", "ay", "om", "x_lo", "x_hi", "half_l", "half_w")


class Population:
    """Live objects with their birth times, stored column-wise.

    ``t_birth_s`` is the simulated time the object appeared; its residual
    motion starts then. Positions at any time are closed-form (see
    :mod:`sorter.sim.objects`).

    Args:
        belt_width_mm: lateral positions are clamped so objects stay on the belt.
    """

    def __init__(self, belt_width_mm: float) -> None:
        self._width = float(belt_width_mm)
        self.specs: list[ObjectSpec] = []
        self.counted: list[bool] = []
        self.ids: I64 = np.zeros(0, np.int64)
        self._cols: dict[str, F64] = {c: np.zeros(0) for c in _COLUMNS}

    def __len__(self) -> int:
        return len(self.specs)

    def add(self, spec: ObjectSpec, t_birth_s: float, counted: bool) -> None:
        """Add an object that appeared at simulated time ``t_birth_s``."""
        m = spec.motion
        hw = spec.half_width_mm
        lo, hi = (hw, self._width - hw) if 2.0 * hw < self._width else (self._width / 2.0, self._width / 2.0)
        row = {
            "u": spec.u_mm,
            "x0": spec.x_mm,
            "t_birth": t_birth_s,
            "vx": m.vx0_mm_s,
            "ax": m.ax_mm_s,
            "vy": m.vy0_mm_s,
            "ay": m.ay_mm_s,
            "om": m.omega_rad_s if m.omega_rad_s > 0 else 1.0,
            "x_lo": lo,
            "x_hi": hi,
            "half_l": spec.half_length_mm,
            "half_w": hw,
        }
        for c in _COLUMNS:
            self._cols[c] = np.append(self._cols[c], row[c])
        self.ids = np.append(self.ids, np.int64(spec.object_id))
        self.specs.append(spec)
        self.counted.append(counted)

    def remove(self, mask: Mask) -> list[tuple[ObjectSpec, bool]]:
        """Remove the objects where ``mask`` is true; return their specs and ``counted`` flags."""
        if not mask.any():
            return []
        idx = np.flatnonzero(mask)
        gone = [(self.specs[i], self.counted[i]) for i in idx]
        keep = ~mask
        for c in _COLUMNS:
            self._cols[c] = self._cols[c][keep]
        self.ids = self.ids[keep]
        keep_idx = np.flatnonzero(keep)
        self.specs = [self.specs[i] for i in keep_idx]
        self.counted = [self.counted[i] for i in keep_idx]
        return gone

    def index_of(self, object_id: int) -> int | None:
        """Row of an object id, or ``None`` if it is not on the belt."""
        hits = np.flatnonzero(self.ids == object_id)
        return int(hits[0]) if len(hits) else None

    def centres(self, t_s: float, s_mm: float) -> tuple[F64, F64]:
        """True centres ``(x_mm, y_w_mm)`` of every object at simulated time ``t_s`` with odometer ``s_mm``."""
        c = self._cols
        tau = np.maximum(t_s - c["t_birth"], 0.0)
        osc = (1.0 - np.cos(c["om"] * tau)) / c["om"]
        y = c["u"] + s_mm + c["vy"] * tau + c["ay"] * osc
        x = np.clip(c["x0"] + c["vx"] * tau + c["ax"] * osc, c["x_lo"], c["x_hi"])
        return x, y

    @property
    def half_length_mm(self) -> F64:
        """Half along-belt extents ``(N,)``."""
        return self._cols["half_l"]

    @property
    def half_width_mm(self) -> F64:
        """Half lateral extents ``(N,)``."""
        return self._cols["half_w"]
