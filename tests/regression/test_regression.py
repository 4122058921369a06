"""Fixed-seed runs of the simulated line may not sort worse than the stored baseline (``baseline.json``)."""

from __future__ import annotations

import pytest
from regression_harness import SCENARIOS, Scenario, load_baseline, measure, regressions


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_is_not_worse_than_the_baseline(scenario: Scenario) -> None:
    base = load_baseline()["scenarios"].get(scenario.name)
    assert base is not None, f"no baseline for {scenario.name}: run scripts/refresh_regression_baseline.py"
    assert (base["args"], base["duration_s"], base["profile"]) == (
        list(scenario.args),
        scenario.duration_s,
        scenario.profile,
    ), f"{scenario.name} changed since the baseline was written: refresh it"
    now = measure(scenario)
    assert now["targets_passed"] == base["targets_passed"], "the same seed must bring the same objects"
    assert regressions(now, base) == []


def test_the_comparison_catches_each_kind_of_regression() -> None:
    base = {"recovery": 0.99, "purity": 1.0, "fire_error_p99_mm": 3.0, "causes": {"never_detected": 1, "other": 0}}
    assert regressions(dict(base), base) == []
    worse = {"recovery": 0.97, "purity": 0.98, "fire_error_p99_mm": 4.0, "causes": {"never_detected": 3, "other": 1}}
    found = regressions(worse, base)
    assert [f.split()[0] for f in found] == ["recovery", "purity", "fire", "cause"]
    assert "never_detected" in found[-1]
