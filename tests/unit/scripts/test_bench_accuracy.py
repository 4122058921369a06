"""The accuracy benchmark's reading of a run summary: which targets a run meets, and the robot's reachable share."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.unit.scripts.script_module import load_script

bench = load_script("bench_accuracy")

CAUSES = ("not_visible", "wrong_class", "fire_position_off", "actuator_busy_or_rate_limited")


def _summary(
    *,
    targets: int,
    ejected: int,
    recovery: float,
    purity: float,
    errors: list[float],
    causes: dict[str, tuple[int, int]],
) -> dict[str, Any]:
    return {
        "targets_passed": targets,
        "targets_ejected": ejected,
        "recovery": recovery,
        "recovery_visible": 1.0,
        "purity": purity,
        "commands_executed": len(errors),
        "fire_position_errors_mm": errors,
        "fire_position_error_mm": {"p50": float(np.percentile(errors, 50)), "p99": float(np.percentile(errors, 99))},
        "explain": {
            "causes": {
                c: {"target_missed": causes.get(c, (0, 0))[0], "nontarget_removed": causes.get(c, (0, 0))[1],
                    "total": sum(causes.get(c, (0, 0)))}
                for c in CAUSES
            }
        },
    }


def _scenario(kind: str) -> Any:
    return next(sc for sc in bench.scenarios([1]) if sc.kind == kind)


def test_a_clean_default_run_meets_every_target() -> None:
    s = _summary(targets=50, ejected=50, recovery=1.0, purity=1.0, errors=[1.0] * 60, causes={})
    row = bench.row_of(_scenario("default"), s)
    assert row.unmet == []


def test_each_target_missed_is_named() -> None:
    errors = [1.0] * 98 + [12.0, 30.0]  # p99 past 5 mm
    s = _summary(targets=50, ejected=49, recovery=0.98, purity=0.98, errors=errors, causes={"fire_position_off": (0, 2)})
    row = bench.row_of(_scenario("default"), s)
    assert row.unmet == ["recovery", "purity", "fire p99", "position off"]
    assert row.position_off_share == pytest.approx(0.02)


def test_the_robot_counts_only_the_targets_its_rate_limit_let_it_reach() -> None:
    # 44 targets passed, 4 left for want of a pick slot, 38 picked: 38 of 40 reachable
    s = _summary(targets=44, ejected=38, recovery=38 / 44, purity=1.0, errors=[3.0] * 38,
                 causes={"actuator_busy_or_rate_limited": (4, 0), "not_visible": (2, 0)})
    row = bench.row_of(_scenario("robot"), s)
    assert row.targets == 40
    assert row.recovery == pytest.approx(0.95)
    assert row.unmet == []  # no fire-error targets on a robot line


def test_percentile_matches_numpy() -> None:
    values = [0.3, 7.0, 1.5, 2.25, 40.0, 5.0]
    for q in (0.0, 50.0, 90.0, 99.0, 100.0):
        assert bench.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert bench.percentile([], 50.0) is None


def test_unmet_targets_the_oracle_misses_too_are_marked(capsys: pytest.CaptureFixture[str]) -> None:
    # the model misses recovery, purity and the fire p99; the oracle misses recovery alone (a hidden target)
    model = bench.row_of(_scenario("default"), _summary(targets=50, ejected=49, recovery=0.98, purity=0.98,
                                                        errors=[1.0] * 98 + [12.0, 30.0], causes={}))
    model.ceiling = bench.row_of(_scenario("default"), _summary(targets=50, ejected=49, recovery=0.98, purity=1.0,
                                                                errors=[0.5] * 100, causes={"not_visible": (1, 0)}))
    assert model.unmet_marked == ["recovery*", "purity", "fire p99"]
    bench.print_table([model])
    out = capsys.readouterr().out
    assert "[not met: recovery*, purity, fire p99]" in out
    assert "the same with the oracle detector, 1 seeds: recovery mean 0.9800" in out
    assert "1 of the 3 unmet targets (*) are missed by the oracle detector too" in out
    alone = bench.row_of(_scenario("default"), _summary(targets=50, ejected=49, recovery=0.98, purity=1.0,
                                                        errors=[1.0] * 10, causes={}))
    assert alone.unmet_marked == ["recovery"]  # without an oracle run nothing is marked
