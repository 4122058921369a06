"""The sweep file: a base config, the keys to vary and their values, and the metrics to rank by. Pure.

A sweep file (YAML)::

    base:
      config: [sim-airjet.yaml, site.yaml]   # files merged in order; relative to this file, or shipped names
      set: {policy.targets: [pet_bottle]}     # overrides applied to every setting
    grid:                                     # every combination of these (a product)
      detector.min_score: [0.2, 0.3, 0.4]
      tracker.gate_mm: {start: 40, stop: 100, step: 20}        # 40, 60, 80, 100 (stop included)
      airjet.valves.latency_ms: {start: 0, stop: 6, num: 4}    # 0, 2, 4, 6
    zip:                                      # optional: keys that move together; each group is one axis
      - airjet.valves.margin_mm: [5, 10]
        airjet.valves.lateral_margin_mm: [2, 5]
    rank: [recovery, purity]                  # or {metric: fire_position_error_mm.p99, goal: min}

Settings are numbered in the order of the product (the first axis varies slowest), so the same file always gives
the same ids.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sorter.errors import ConfigError

Goal = Literal["max", "min"]

#: the goal of metrics everyone agrees on; any other summary key needs ``goal:`` in the file
KNOWN_GOALS: dict[str, Goal] = {
    "recovery": "max",
    "recovery_visible": "max",
    "purity": "max",
    "targets_ejected": "max",
    "nontargets_ejected": "min",
    "fire_position_error_mm.p50": "min",
    "fire_position_error_mm.p99": "min",
    "fire_position_error_mm.max": "min",
    "commands_late_dropped": "min",
    "commands_executed_late": "min",
    "pulses_without_object": "min",
    "pick_success": "max",
}
#: the keys of a sweep file
TOP_KEYS = ("base", "grid", "zip", "rank")
#: more settings than this is a mistake in the file, not a sweep
MAX_SETTINGS = 10_000
#: keys a replay cannot change: the simulated world is the recording's
FROZEN_PREFIXES = ("sim.",)


@dataclass(frozen=True)
class RankMetric:
    """A summary value to rank settings by (dotted for nested values: ``fire_position_error_mm.p99``)."""

    metric: str
    goal: Goal


@dataclass(frozen=True)
class Setting:
    """One point of the grid: ``values`` maps config keys to the values of this point."""

    index: int
    values: dict[str, Any]

    @property
    def id(self) -> str:
        return f"s{self.index:03d}"

    def label(self) -> str:
        """``key=value, ...`` with the short key names (the last part of each key)."""
        return ", ".join(f"{k.rsplit('.', 1)[-1]}={format_value(v)}" for k, v in self.values.items())

    def overrides(self) -> list[str]:
        """``key=value`` overrides (``--set`` syntax; values in JSON, which YAML reads back unchanged)."""
        return [f"{k}={json.dumps(v)}" for k, v in self.values.items()]


@dataclass(frozen=True)
class Axis:
    """One axis of the product: one key, or several keys that move together (a zip group)."""

    keys: tuple[str, ...]
    points: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class SweepGrid:
    """A parsed sweep file."""

    source: Path
    base_configs: tuple[str, ...]
    base_set: dict[str, Any]
    axes: tuple[Axis, ...]
    rank: tuple[RankMetric, ...]
    settings: tuple[Setting, ...] = field(default=())

    @property
    def keys(self) -> tuple[str, ...]:
        """Every swept key, in the file's order."""
        return tuple(k for a in self.axes for k in a.keys)

    def base_overrides(self) -> list[str]:
        return [f"{k}={json.dumps(v)}" for k, v in self.base_set.items()]


def format_value(v: Any) -> str:
    """A value as a person reads it in labels and tables."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(format_value(x) for x in v) + "]"
    return str(v)


def _round(x: float) -> float | int:
    """Drop binary noise from arithmetic steps (0.1 * 3 -> 0.3); integers stay integers."""
    r = float(f"{x:.12g}")
    return int(r) if r.is_integer() and abs(r) < 2**53 else r


def expand_values(where: str, spec: Any) -> list[Any]:
    """The values of one key: a list, or a range ``{start, stop, step}`` / ``{start, stop, num}`` (stop included)."""
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{where}: the list of values is empty; give at least one value")
        return list(spec)
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where} = {spec!r}: expected a list of values or a range such as {{start: 0.2, stop: 0.5, step: 0.1}}"
        )
    unknown = sorted(set(spec) - {"start", "stop", "step", "num"})
    if unknown or "start" not in spec or "stop" not in spec or ("step" in spec) == ("num" in spec):
        raise ConfigError(
            f"{where} = {dict(spec)!r}: a range needs start, stop and one of step or num, e.g. "
            "{start: 0.2, stop: 0.5, step: 0.1} or {start: 0, stop: 6, num: 4}"
        )
    try:
        start, stop = float(spec["start"]), float(spec["stop"])
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: start and stop must be numbers, got {spec['start']!r} and {spec['stop']!r}") from None
    if "num" in spec:
        num = spec["num"]
        if not isinstance(num, int) or num < 1:
            raise ConfigError(f"{where}: num = {num!r} must be a whole number >= 1")
        if num == 1:
            return [_round(start)]
        return [_round(start + (stop - start) * k / (num - 1)) for k in range(num)]
    try:
        step = float(spec["step"])
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: step = {spec['step']!r} must be a number") from None
    if step == 0 or not math.isfinite(step) or (stop - start) / step < 0:
        raise ConfigError(f"{where}: step = {step:g} never goes from {start:g} to {stop:g}; give a step with the right sign")
    n = math.floor((stop - start) / step + 1e-9) + 1
    if n > MAX_SETTINGS:
        raise ConfigError(f"{where}: the range has {n} values (more than {MAX_SETTINGS}); use a larger step")
    return [_round(start + k * step) for k in range(n)]


def _check_key(where: str, key: Any) -> str:
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{where}: {key!r} is not a config key; write it dotted, e.g. detector.min_score")
    if key.startswith(FROZEN_PREFIXES):
        raise ConfigError(
            f"{where}: '{key}' cannot be swept: a replay re-runs recorded footage, and the simulated world (sim.*) is the "
            "one the recording was made with; record one recording per world instead"
        )
    return key


def _parse_rank(src: str, raw: Any) -> tuple[RankMetric, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out: list[RankMetric] = []
    for item in items:
        if isinstance(item, str):
            goal = KNOWN_GOALS.get(item)
            if goal is None:
                raise ConfigError(
                    f"{src}: rank metric '{item}' has no known goal; write {{metric: {item}, goal: max}} (or goal: min)"
                )
            out.append(RankMetric(item, goal))
        elif isinstance(item, Mapping) and set(item) <= {"metric", "goal"} and isinstance(item.get("metric"), str):
            goal = item.get("goal", KNOWN_GOALS.get(item["metric"]))
            if goal not in ("max", "min"):
                raise ConfigError(f"{src}: rank metric '{item['metric']}': goal = {goal!r} must be max or min")
            out.append(RankMetric(item["metric"], goal))
        else:
            raise ConfigError(f"{src}: rank entry {item!r}: expected a metric name or {{metric: NAME, goal: max|min}}")
    return tuple(out)


def _parse_axes(src: str, grid: Any, zips: Any) -> tuple[Axis, ...]:
    axes: list[Axis] = []
    seen: set[str] = set()

    def claim(where: str, key: Any) -> str:
        k = _check_key(where, key)
        if k in seen:
            raise ConfigError(f"{where}: '{k}' is swept twice; keep it in one place (grid or one zip group)")
        seen.add(k)
        return k

    if grid is not None and not isinstance(grid, Mapping):
        raise ConfigError(f"{src}: 'grid' must map config keys to values, e.g. grid: {{detector.min_score: [0.2, 0.3]}}")
    for key, spec in (grid or {}).items():
        k = claim(f"{src}: grid", key)
        axes.append(Axis((k,), tuple((v,) for v in expand_values(f"{src}: grid.{k}", spec))))
    if zips is not None and not isinstance(zips, list):
        raise ConfigError(f"{src}: 'zip' must be a list of groups, each mapping keys to equally long value lists")
    for n, group in enumerate(zips or []):
        where = f"{src}: zip[{n}]"
        if not isinstance(group, Mapping) or not group:
            raise ConfigError(f"{where}: expected a mapping of keys to value lists of equal length")
        keys = [claim(where, k) for k in group]
        columns = [expand_values(f"{where}.{k}", group[k]) for k in keys]
        lengths = {len(c) for c in columns}
        if len(lengths) != 1:
            sizes = ", ".join(f"{k}: {len(c)}" for k, c in zip(keys, columns, strict=True))
            raise ConfigError(f"{where}: keys that move together need as many values each ({sizes})")
        axes.append(Axis(tuple(keys), tuple(zip(*columns, strict=True))))
    if not axes:
        raise ConfigError(f"{src}: nothing to sweep; add a 'grid' (or 'zip') with at least one key, e.g. detector.min_score")
    return tuple(axes)


def expand(axes: Sequence[Axis]) -> tuple[Setting, ...]:
    """Every combination of the axes, the first axis varying slowest."""
    total = math.prod(len(a.points) for a in axes)
    if total > MAX_SETTINGS:
        raise ConfigError(f"the grid has {total} settings (more than {MAX_SETTINGS}); sweep fewer keys or values")
    out = []
    for i, combo in enumerate(itertools.product(*(a.points for a in axes))):
        values: dict[str, Any] = {}
        for axis, point in zip(axes, combo, strict=True):
            values.update(zip(axis.keys, point, strict=True))
        out.append(Setting(i, values))
    return tuple(out)


def parse_grid(doc: Any, source: Path) -> SweepGrid:
    """Validate a loaded sweep file; relative config paths resolve against the file's folder."""
    src = str(source)
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{src}: the sweep file must be a mapping with 'base', 'grid' (or 'zip') and optionally 'rank'")
    unknown = sorted(str(k) for k in doc if k not in TOP_KEYS)
    if unknown:
        raise ConfigError(f"{src}: unknown key(s) {', '.join(unknown)}; a sweep file has {', '.join(TOP_KEYS)}")
    base = doc.get("base") or {}
    if not isinstance(base, Mapping) or set(base) - {"config", "set"}:
        raise ConfigError(f"{src}: 'base' takes 'config' (a file or a list of files) and 'set' (key: value overrides)")
    configs = base.get("config") or []
    configs = [configs] if isinstance(configs, str) else configs
    if not isinstance(configs, list) or not all(isinstance(c, str) for c in configs):
        raise ConfigError(f"{src}: base.config = {configs!r}: expected a config file or a list of them")
    here = source.parent
    resolved = tuple(str(here / c) if (here / c).exists() else c for c in configs)
    base_set = base.get("set") or {}
    if not isinstance(base_set, Mapping):
        raise ConfigError(f"{src}: base.set must map config keys to values, e.g. {{policy.targets: [pet_bottle]}}")
    for k in base_set:
        _check_key(f"{src}: base.set", k)
    axes = _parse_axes(src, doc.get("grid"), doc.get("zip"))
    swept_and_set = sorted(set(base_set) & {k for a in axes for k in a.keys})
    if swept_and_set:
        raise ConfigError(f"{src}: {', '.join(swept_and_set)} both set in base.set and swept; remove it from base.set")
    rank = _parse_rank(src, doc.get("rank"))
    return SweepGrid(source, resolved, dict(base_set), axes, rank, expand(axes))


def load_grid(path: str | Path) -> SweepGrid:
    """Read and validate a sweep file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"sweep file '{p}' does not exist; pass the path of a sweep YAML (see 'Config sweeps' in README.md)"
        ) from None
    except OSError as e:
        raise ConfigError(f"sweep file '{p}' cannot be read ({e.strerror})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"sweep file '{p}' is not valid YAML: {e}") from None
    return parse_grid(doc, p)
