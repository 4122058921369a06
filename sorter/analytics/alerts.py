"""Alert thresholds on what goes by: the ``analytics.alerts`` config section and the alert record.

A rule watches one number measured over a trailing window of the line's own
events and raises an alert while the number is past its threshold::

    analytics:
      alerts:
        step_s: 60                       # evaluated once a minute, on the minute
        rules:
          - kind: contamination_share    # non-target classes among the ejected (picked) objects
            above_pct: 5
            clear_below_pct: 4           # optional: clears only at or below 4 % (default: at or below above_pct)
            window_min: 10
          - kind: throughput             # objects per minute
            below_per_min: 30
            window_min: 5
          - kind: class_share            # one class's share of all objects
            class_name: film
            above_pct: 20
            window_min: 15

An alert starts at the first evaluation whose window is past the threshold and
ends at the first one back at the clear level (the threshold unless set apart,
so that a value hovering at the threshold does not raise and clear every step);
while it lasts it keeps the worst value seen.
Windows holding fewer objects than ``min_count`` are not judged (one ejected
film in a quiet minute is not 100 % contamination), and an alert is never
raised on a window that reaches back before the data starts. Evaluation lives
in :mod:`sorter.analytics.alert_eval`; this module holds only the schema and
the record, so that the config schema can import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sorter.entities import MATERIAL_CLASSES

ALERT_KINDS = ("contamination_share", "throughput", "class_share")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rule(_Section):
    name: str | None = Field(None, description="the alert's name in reports and /metrics (default: the kind, plus the class)")
    window_min: float = Field(10.0, gt=0, le=1440, description="the value is measured over the last window_min minutes")

    @property
    def rule_name(self) -> str:
        """The rule's name: ``name``, or one made from the kind (``class_share:film``)."""
        return self.name or self.default_name()

    def default_name(self) -> str:
        raise NotImplementedError


def _check_clear(threshold: float, clear: float | None, above: bool, key: str, thr_key: str) -> None:
    if clear is not None and (clear > threshold if above else clear < threshold):
        raise ValueError(f"{key} ({clear:g}) must be {'at or below' if above else 'at or above'} {thr_key} ({threshold:g}), "
                         "so that an alert can clear")


class ContaminationRule(_Rule):
    """Non-target classes among the ejected (or picked) objects, in percent, above ``above_pct``."""

    kind: Literal["contamination_share"]
    above_pct: float = Field(gt=0, lt=100)
    clear_below_pct: float | None = Field(None, ge=0, description="clears at or below this (default: above_pct)")
    min_count: int = Field(10, ge=1, description="windows with fewer ejected objects are not judged")

    def default_name(self) -> str:
        return "contamination_share"

    @model_validator(mode="after")
    def _clear_level(self) -> ContaminationRule:
        _check_clear(self.above_pct, self.clear_below_pct, True, "clear_below_pct", "above_pct")
        return self


class ThroughputRule(_Rule):
    """Objects per minute below ``below_per_min``."""

    kind: Literal["throughput"]
    below_per_min: float = Field(gt=0)
    clear_above_per_min: float | None = Field(None, gt=0, description="clears at or above this (default: below_per_min)")

    def default_name(self) -> str:
        return "throughput"

    @model_validator(mode="after")
    def _clear_level(self) -> ThroughputRule:
        _check_clear(self.below_per_min, self.clear_above_per_min, False, "clear_above_per_min", "below_per_min")
        return self


class ClassShareRule(_Rule):
    """One class's share of all objects, in percent, above ``above_pct``."""

    kind: Literal["class_share"]
    class_name: str
    above_pct: float = Field(gt=0, lt=100)
    clear_below_pct: float | None = Field(None, ge=0, description="clears at or below this (default: above_pct)")
    min_count: int = Field(20, ge=1, description="windows with fewer objects are not judged")

    @field_validator("class_name")
    @classmethod
    def _known_class(cls, v: str) -> str:
        if v not in MATERIAL_CLASSES:
            raise ValueError(f"unknown class {v!r}; known classes are: {', '.join(MATERIAL_CLASSES)}")
        return v

    def default_name(self) -> str:
        return f"class_share:{self.class_name}"

    @model_validator(mode="after")
    def _clear_level(self) -> ClassShareRule:
        _check_clear(self.above_pct, self.clear_below_pct, True, "clear_below_pct", "above_pct")
        return self


AlertRule = Annotated[ContaminationRule | ThroughputRule | ClassShareRule, Field(discriminator="kind")]


class AlertsConfig(_Section):
    """``analytics.alerts``: thresholds evaluated over the event store; raised alerts are written to it."""

    step_s: int = Field(60, ge=1, le=3600, description="evaluated every step_s seconds, on clock multiples of it")
    rules: tuple[AlertRule, ...] = ()

    @field_validator("step_s")
    @classmethod
    def _tiles_the_hour(cls, v: int) -> int:
        if 3600 % v:
            raise ValueError(f"step_s {v} does not divide an hour; use e.g. 10, 15, 30, 60, 300")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsConfig:
        names = [r.rule_name for r in self.rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two alert rules are named {', '.join(twice)}; give each a distinct name")
        return self


def threshold_of(rule: ContaminationRule | ThroughputRule | ClassShareRule) -> tuple[float, float, str, bool]:
    """``(threshold, clear_at, unit, above)``: where the rule raises, where it clears, its unit (``%`` or ``per min``),
    and whether above the threshold is bad (else below)."""
    if isinstance(rule, ThroughputRule):
        clear = rule.clear_above_per_min if rule.clear_above_per_min is not None else rule.below_per_min
        return rule.below_per_min, clear, "per min", False
    return rule.above_pct, rule.clear_below_pct if rule.clear_below_pct is not None else rule.above_pct, "%", True


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: a rule's value past its threshold from ``t_start_ns`` to ``t_end_ns``.

    Attributes:
        rule: the rule's name (unique within a line).
        kind: ``contamination_share``, ``throughput`` or ``class_share``.
        t_start_ns: wall-clock epoch ns of the evaluation that raised it.
        t_end_ns: of the evaluation that cleared it; None while it lasts (or when the data ended first).
        value: the worst value seen while it lasted, in ``unit``.
        threshold: the rule's threshold, in ``unit``.
        unit: ``%`` or ``per min``.
        window_s: the window the value is measured over (s).
        message: one line for people, e.g. ``contamination share 12.5 % above 5 % (non-target classes among ejected, 10 min)``.
    """

    rule: str
    kind: str
    t_start_ns: int
    t_end_ns: int | None
    value: float
    threshold: float
    unit: str
    window_s: float
    message: str

    @property
    def active(self) -> bool:
        return self.t_end_ns is None


@dataclass(frozen=True, slots=True)
class GaugeSample:
    """One gauge value for ``/metrics`` (Prometheus text: ``name{labels} value``, with ``help`` as ``# HELP``)."""

    name: str
    help: str
    labels: tuple[tuple[str, str], ...]
    value: float
