"""Latency profiles: the modelled processing time of each stage on a target box, charged by ``sorter run --fast``.

A profile file (YAML or JSON) gives, per stage, either a ``p50_ms``/``p99_ms``
pair (sampled from the log-normal distribution with those percentiles) or the
measured ``samples_ms`` themselves (sampled uniformly). Stages are those of the
loop: ``detect``, ``project``, ``track``, ``plan``, ``actuate``. A stage the
profile does not name costs nothing.

Sampling uses one seeded generator, drawn in the loop's fixed stage order, so
the same seed and profile give the same charged times on any machine under any
load: that is what makes ``--fast`` runs reproducible.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sorter.config import CONFIG_DIR, Config
from sorter.errors import ConfigError

#: Where the shipped profiles live (``runtime.latency_profile`` names one of them, or a file).
PROFILES_DIR = CONFIG_DIR / "profiles"

#: The loop's stages, in the order a cycle charges them.
STAGES = ("detect", "project", "track", "plan", "actuate")
#: z of the 99th percentile of the standard normal distribution.
_Z99 = 2.3263478740408408
#: A log-normal draw is capped at this many times its stage's p99 (a model, not a tail generator).
_CAP_X_P99 = 4.0


@dataclass(frozen=True, slots=True)
class StageModel:
    """Modelled time of one stage: percentiles, or measured samples (ms)."""

    p50_ms: float
    p99_ms: float
    samples_ms: tuple[float, ...] = ()

    def scaled_to(self, p50_ms: float) -> StageModel:
        """The same spread (p99/p50 ratio, sample shape) around a new median ``p50_ms``."""
        k = p50_ms / self.p50_ms if self.p50_ms > 0 else 0.0
        if k == 0.0:
            return StageModel(p50_ms, p50_ms)
        return StageModel(p50_ms, self.p99_ms * k, tuple(v * k for v in self.samples_ms))


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """Per-stage modelled processing time of one kind of box.

    Attributes:
        name: short name, e.g. ``cpu-2core``.
        source: ``measured`` (by ``scripts/bench_loop.py --write-profile``) or ``modelled``.
        description: what box, detector and settings it stands for.
        stages: stage name -> model.
    """

    name: str
    source: str
    description: str
    stages: Mapping[str, StageModel] = field(default_factory=dict)

    def with_overrides(self, p50_ms: Mapping[str, float]) -> LatencyProfile:
        """This profile with the median of some stages replaced (spread kept); a new stage gets no spread."""
        stages = dict(self.stages)
        for stage, v in p50_ms.items():
            old = stages.get(stage)
            stages[stage] = old.scaled_to(v) if old is not None else StageModel(v, v)
        desc = ", ".join(f"{k} {v:g} ms" for k, v in p50_ms.items())
        return LatencyProfile(f"{self.name}+override", self.source, f"{self.description} (p50 overridden: {desc})", stages)

    def p50_total_ms(self) -> float:
        """Sum of the stage medians: about the time one frame takes through the loop."""
        return sum(m.p50_ms for m in self.stages.values())

    def slowest_stage(self) -> tuple[str, float]:
        """``(stage, p50_ms)`` of the stage with the largest median (``("none", 0.0)`` for an empty profile)."""
        if not self.stages:
            return "none", 0.0
        stage = max(self.stages, key=lambda k: self.stages[k].p50_ms)
        return stage, self.stages[stage].p50_ms

    def to_dict(self) -> dict[str, Any]:
        """The file form (``samples_ms`` only where there are samples)."""
        stages: dict[str, Any] = {}
        for k, m in self.stages.items():
            d: dict[str, Any] = {"p50_ms": round(m.p50_ms, 4), "p99_ms": round(m.p99_ms, 4)}
            if m.samples_ms:
                d["samples_ms"] = [round(v, 4) for v in m.samples_ms]
            stages[k] = d
        return {"name": self.name, "source": self.source, "description": self.description, "stages": stages}


def _positive(where: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: '{key}' must be a number of milliseconds >= 0, got {value!r}")
    return float(value)


def parse_profile(data: object, where: str) -> LatencyProfile:
    """Validate the contents of a profile file (``where`` names it in errors).

    Raises:
        ConfigError: naming the file, the key and the value.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a latency profile is a mapping with 'name' and 'stages', got {type(data).__name__}")
    unknown = set(data) - {"name", "source", "description", "stages"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; a profile has name, source, description, stages")
    raw = data.get("stages")
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{where}: 'stages' must map stage names ({', '.join(STAGES)}) to {{p50_ms, p99_ms}}")
    stages: dict[str, StageModel] = {}
    for stage, spec in raw.items():
        if stage not in STAGES:
            raise ConfigError(f"{where}: unknown stage '{stage}'; the stages are {', '.join(STAGES)}")
        key = f"stages.{stage}"
        if not isinstance(spec, Mapping) or not ({"p50_ms", "samples_ms"} & set(spec)):
            raise ConfigError(f"{where}: '{key}' needs p50_ms and p99_ms (or samples_ms), got {spec!r}")
        samples: tuple[float, ...] = ()
        if "samples_ms" in spec:
            vals = spec["samples_ms"]
            if not isinstance(vals, list) or not vals:
                raise ConfigError(f"{where}: '{key}.samples_ms' must be a non-empty list of milliseconds, got {vals!r}")
            samples = tuple(_positive(where, f"{key}.samples_ms", v) for v in vals)
        p50 = _positive(where, f"{key}.p50_ms", spec.get("p50_ms", float(np.percentile(samples, 50)) if samples else 0.0))
        p99 = _positive(where, f"{key}.p99_ms", spec.get("p99_ms", float(np.percentile(samples, 99)) if samples else p50))
        if p99 < p50:
            raise ConfigError(f"{where}: '{key}.p99_ms' ({p99}) is below its p50_ms ({p50}); p99 must be >= p50")
        stages[stage] = StageModel(p50, p99, samples)
    name = data.get("name", Path(where).stem)
    return LatencyProfile(str(name), str(data.get("source", "measured")), str(data.get("description", "")), stages)


def profile_path(name_or_path: str, profiles_dir: Path) -> Path:
    """A profile's file: an existing path, else ``<profiles_dir>/<name>.yaml`` (or ``.json``)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml", ".json") and p.exists():
        return p
    for ext in (".yaml", ".yml", ".json"):
        shipped = profiles_dir / f"{name_or_path}{ext}"
        if shipped.exists():
            return shipped
    known = sorted(f.stem for f in profiles_dir.glob("*.y*ml")) if profiles_dir.is_dir() else []
    raise ConfigError(
        f"runtime.latency_profile: '{name_or_path}' is neither a profile file nor a shipped profile; "
        f"use one of {', '.join(known) or '(none shipped)'} or write one with scripts/bench_loop.py --write-profile PATH"
    )


def load_profile(name_or_path: str, profiles_dir: Path) -> LatencyProfile:
    """Load and validate a profile by name (under ``profiles_dir``) or path.

    Raises:
        ConfigError: a missing or malformed file, naming it and the fix.
    """
    import yaml

    path = profile_path(name_or_path, profiles_dir)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the latency profile ({e}); fix the file or write it again with "
                          "scripts/bench_loop.py --write-profile") from None
    return parse_profile(data, str(path))


class StageSampler:
    """Draws each stage's modelled time (ns) from a profile with one seeded generator."""

    def __init__(self, profile: LatencyProfile, seed: int) -> None:
        self.profile = profile
        self._rng = np.random.default_rng([seed, 0x1A7E])
        self._models = dict(profile.stages)

    def sample_ns(self, stage: str) -> int:
        """One draw of ``stage``'s time in ns (0 for a stage the profile does not model)."""
        m = self._models.get(stage)
        if m is None:
            return 0
        if m.samples_ms:
            v = m.samples_ms[int(self._rng.integers(len(m.samples_ms)))]
        elif m.p50_ms <= 0 or m.p99_ms <= m.p50_ms:
            v = m.p50_ms
        else:
            sigma = math.log(m.p99_ms / m.p50_ms) / _Z99
            v = min(m.p50_ms * math.exp(sigma * float(self._rng.standard_normal())), _CAP_X_P99 * m.p99_ms)
        return round(v * 1e6)


def line_profile(cfg: Config) -> LatencyProfile:
    """The latency profile ``runtime.latency_profile`` names, with ``runtime.latency_override_ms`` applied.

    Raises:
        ConfigError: the profile cannot be found or read (naming it and the fix).
    """
    profile = load_profile(cfg.runtime.latency_profile, PROFILES_DIR)
    over = cfg.runtime.latency_override_ms
    return profile.with_overrides(over) if over else profile


def rate_warning(profile: LatencyProfile, fps: float) -> str | None:
    """Why the box ``profile`` models cannot hold ``fps`` (stage medians over the frame budget), else None."""
    budget_ms = 1000.0 / fps
    total = profile.p50_total_ms()
    if total <= budget_ms:
        return None
    stage, worst = profile.slowest_stage()
    return (
        f"latency profile '{profile.name}' ({profile.source}) needs {total:.1f} ms per frame ({stage} {worst:.1f} ms p50), "
        f"over the {budget_ms:.1f} ms budget of {fps:g} fps: about {100 * (1 - budget_ms / total):.0f} % of frames "
        f"will be dropped and the line will say 'degraded: overloaded'; lower camera.fps to {1000.0 / total:.0f} "
        "or below, or run on a faster box (and measure it: scripts/bench_loop.py --write-profile)"
    )
