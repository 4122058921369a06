"""Fixed-seed scenarios of the simulated line and the figures the regression baseline holds for each.

Each scenario is a short ``sorter run --fast --explain`` with a fixed seed on deterministic simulated time: every
stage is charged a modelled processing time drawn from a latency profile (``runtime.latency_profile``, seeded by
the run's seed), never the machine's own, so the same scenario gives the same figures on any machine under any
load.

``scripts/refresh_regression_baseline.py`` rewrites ``baseline.json`` from these
scenarios; ``test_regression.py`` compares a fresh run with it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.cli import main as cli_main

BASELINE = Path(__file__).with_name("baseline.json")

#: allowed slack before a figure counts as worse than the baseline
RECOVERY_TOLERANCE = 0.005
PURITY_TOLERANCE = 0.005
FIRE_P99_TOLERANCE_MM = 0.5
CAUSE_TOLERANCE = 1  # failures per cause


@dataclass(frozen=True)
class Scenario:
    """One fixed run: ``sorter run --fast --duration duration_s`` with ``args``, charged from latency profile ``profile``."""

    name: str
    args: tuple[str, ...]
    duration_s: float = 15.0
    profile: str = "cpu-2core"


ORACLE = ("--set", "detector.type=oracle")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("airjet-seed1", (*ORACLE, "--set", "sim.seed=1")),
    Scenario("airjet-seed2", (*ORACLE, "--set", "sim.seed=2")),
    Scenario("airjet-seed3", (*ORACLE, "--set", "sim.seed=3")),
    Scenario("airjet-dense4-seed1", (*ORACLE, "--set", "sim.seed=1", "--set", "sim.density_per_m2=4")),
    Scenario("robot-seed1", (*ORACLE, "--config", "sim-robot.yaml", "--set", "sim.seed=1")),
    Scenario("airjet-model-seed1", ("--set", "sim.seed=1")),
)


def run_summary(sc: Scenario) -> dict[str, Any]:
    """Run one scenario and return its run summary (with the ``explain`` section)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.json"
        argv = ["run", "--quiet", "--fast", "--charge", "profile", "--explain", "--duration", str(sc.duration_s)]
        argv += ["--summary", str(out), "--set", f"runtime.latency_profile={sc.profile}", *sc.args]
        rc = cli_main(argv)
        if rc != 0:
            raise RuntimeError(f"scenario {sc.name}: sorter {' '.join(argv)} exited {rc}")
        data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return data


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """What the baseline keeps of a run: recovery, purity, fire (or pick) error p99, failures per cause."""
    ex = summary["explain"]
    return {
        "targets_passed": summary["targets_passed"],
        "recovery": round(summary["recovery"], 4),
        "purity": round(summary["purity"], 4),
        "fire_error_p99_mm": summary["fire_position_error_mm"]["p99"],
        "causes": {c: row["total"] for c, row in ex["causes"].items()},
    }


def measure(sc: Scenario) -> dict[str, Any]:
    """The baseline figures of one scenario."""
    return figures(run_summary(sc))


def regressions(now: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """Every figure of ``now`` worse than ``base`` beyond its tolerance, in words (empty: no regression)."""
    out: list[str] = []
    if now["recovery"] < base["recovery"] - RECOVERY_TOLERANCE:
        out.append(f"recovery {now['recovery']:.4f} < baseline {base['recovery']:.4f}")
    if now["purity"] < base["purity"] - PURITY_TOLERANCE:
        out.append(f"purity {now['purity']:.4f} < baseline {base['purity']:.4f}")
    p99, p99_base = now["fire_error_p99_mm"], base["fire_error_p99_mm"]
    if p99_base is not None and (p99 is None or p99 > p99_base + FIRE_P99_TOLERANCE_MM):
        out.append(f"fire error p99 {p99} mm > baseline {p99_base} mm")
    for cause, n_base in base["causes"].items():
        n = now["causes"].get(cause, 0)
        if n > n_base + CAUSE_TOLERANCE:
            out.append(f"cause {cause}: {n} failures > baseline {n_base}")
    return out


def load_baseline() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(BASELINE.read_text(encoding="utf-8"))
    return data


def write_baseline(scenarios: tuple[Scenario, ...] = SCENARIOS) -> dict[str, Any]:
    """Run every scenario and write ``baseline.json`` (the settings of each run are kept beside its figures)."""
    data = {
        "about": "figures of fixed-seed runs (tests/regression/regression_harness.py); "
        "refresh with scripts/refresh_regression_baseline.py after an intended change",
        "scenarios": {
            sc.name: {"args": list(sc.args), "duration_s": sc.duration_s, "profile": sc.profile, **measure(sc)}
            for sc in scenarios
        },
    }
    BASELINE.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data
