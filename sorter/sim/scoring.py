"""Sorting scores from what physically happened on the virtual line.

The scoreboard never looks at plans or commands, only at object fates
(ejected, picked, passed), executed pulses and picks. Only objects whose fate
is decided are counted, and only those that crossed the whole camera view, so
the start and the tail of a run do not distort the figures.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from sorter.entities import MATERIAL_CLASSES
from sorter.sim.records import ObjectFate, PickRecord, PulseRecord


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


#: a target at least this visible in some frame could have been seen by a camera
VISIBLE_FRACTION = 0.5


class Scoreboard:
    """Counts for one sorting task.

    Args:
        target_class_ids: classes that should be removed from the belt.
        class_names: names in class-id order (for per-class counts).

    Definitions (over counted objects, i.e. that crossed the whole view and
    whose fate is decided):

    * ``objects_seen``: all of them.
    * ``targets_passed``: targets that reached the ejection line / robot
      window, removed or not.
    * ``targets_ejected`` / ``targets_picked``; ``nontargets_ejected`` /
      ``nontargets_picked`` (co-ejected neighbours, wrong picks).
    * ``recovery`` = targets removed (ejected + picked) / ``targets_passed``
      (``None`` while no target has passed).
    * ``purity`` = targets among removed objects (1.0 when nothing was removed).
    """

    def __init__(self, target_class_ids: frozenset[int], class_names: Sequence[str] = MATERIAL_CLASSES) -> None:
        self.target_class_ids = frozenset(int(c) for c in target_class_ids)
        self.class_names = tuple(class_names)
        self._lock = threading.Lock()
        self.objects_seen = 0
        self.objects_uncounted = 0
        self.targets_passed = 0
        self.targets_ejected = 0
        self.targets_picked = 0
        self.nontargets_ejected = 0
        self.nontargets_picked = 0
        self.per_class: dict[str, dict[str, int]] = {
            n: {"seen": 0, "ejected": 0, "picked": 0, "passed": 0} for n in self.class_names
        }
        self.fire_position_errors_mm: list[float] = []
        self.targets_passed_visible = 0
        self.targets_removed_visible = 0
        self.pulses = 0
        self.pulses_truncated = 0
        self.pulses_without_object = 0
        self.picks_attempted = 0
        self.picks_succeeded = 0
        self.picks_busy = 0
        self.pick_errors_mm: list[float] = []

    # ------------------------------------------------------------------ feeding
    def set_targets(self, target_class_ids: frozenset[int]) -> None:
        """Score objects decided from now on against these targets (a live reload of ``policy.targets``)."""
        with self._lock:
            self.target_class_ids = frozenset(int(c) for c in target_class_ids)

    def record_fate(self, fate: ObjectFate) -> None:
        """Count one decided object."""
        with self._lock:
            if not fate.counted:
                self.objects_uncounted += 1
                return
            self.objects_seen += 1
            target = fate.class_id in self.target_class_ids
            if 0 <= fate.class_id < len(self.class_names):
                pc = self.per_class[self.class_names[fate.class_id]]
                pc["seen"] += 1
                pc[fate.fate] += 1
            if target:
                self.targets_passed += 1
                if fate.max_visible_fraction >= VISIBLE_FRACTION:
                    self.targets_passed_visible += 1
                    self.targets_removed_visible += int(fate.fate in ("ejected", "picked"))
            if fate.fate == "ejected":
                if target:
                    self.targets_ejected += 1
                else:
                    self.nontargets_ejected += 1
            elif fate.fate == "picked":
                if target:
                    self.targets_picked += 1
                else:
                    self.nontargets_picked += 1

    def record_pulse(self, pulse: PulseRecord) -> None:
        """Count one executed valve pulse and its position error."""
        with self._lock:
            self.pulses += 1
            self.pulses_truncated += int(pulse.truncated)
            if pulse.fire_position_error_mm is None:
                self.pulses_without_object += 1
            else:
                self.fire_position_errors_mm.append(abs(pulse.fire_position_error_mm))

    def record_pick(self, pick: PickRecord) -> None:
        """Count one robot pick attempt."""
        with self._lock:
            self.picks_attempted += 1
            self.picks_succeeded += int(pick.success)
            self.picks_busy += int(pick.busy)
            if pick.error_mm is not None and not pick.busy:
                self.pick_errors_mm.append(pick.error_mm)

    # ------------------------------------------------------------------ figures
    @property
    def recovery(self) -> float | None:
        """Share of passed targets that were removed, ``None`` before any target passed."""
        if self.targets_passed == 0:
            return None
        return (self.targets_ejected + self.targets_picked) / self.targets_passed

    @property
    def purity(self) -> float:
        """Share of targets among removed objects (1.0 when nothing was removed)."""
        removed = self.targets_ejected + self.targets_picked + self.nontargets_ejected + self.nontargets_picked
        if removed == 0:
            return 1.0
        return (self.targets_ejected + self.targets_picked) / removed

    def summary(self) -> dict[str, Any]:
        """All figures as a plain dict (JSON-serialisable).

        ``recovery`` is 0.0 while no target has passed (see ``targets_passed``);
        ``fire_position_errors_mm`` lists every absolute error, the ``_p50`` /
        ``_p99`` / ``_max`` keys summarise them (``None`` when empty).
        """
        with self._lock:
            errs = list(self.fire_position_errors_mm)
            pick_errs = list(self.pick_errors_mm)
            return {
                "objects_seen": self.objects_seen,
                "objects_uncounted": self.objects_uncounted,
                "targets_passed": self.targets_passed,
                "targets_ejected": self.targets_ejected,
                "targets_picked": self.targets_picked,
                "nontargets_ejected": self.nontargets_ejected,
                "nontargets_picked": self.nontargets_picked,
                "recovery": self.recovery or 0.0,
                "targets_passed_visible": self.targets_passed_visible,
                "recovery_visible": (
                    self.targets_removed_visible / self.targets_passed_visible if self.targets_passed_visible else 0.0
                ),
                "purity": self.purity,
                "pulses": self.pulses,
                "pulses_truncated": self.pulses_truncated,
                "pulses_without_object": self.pulses_without_object,
                "fire_position_errors_mm": errs,
                "fire_position_error_mm_p50": _percentile(errs, 50),
                "fire_position_error_mm_p99": _percentile(errs, 99),
                "fire_position_error_mm_max": max(errs) if errs else None,
                "picks_attempted": self.picks_attempted,
                "picks_succeeded": self.picks_succeeded,
                "picks_busy": self.picks_busy,
                "pick_success": self.picks_succeeded / self.picks_attempted if self.picks_attempted else 0.0,
                "pick_errors_mm": pick_errs,
                "pick_error_mm_p50": _percentile(pick_errs, 50),
                "per_class": {k: dict(v) for k, v in self.per_class.items()},
            }
