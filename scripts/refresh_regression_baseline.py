#!/usr/bin/env python3
"""Rewrite ``tests/regression/baseline.json`` from the fixed-seed scenarios (after an intended change in sorting).

Usage: ``scripts/refresh_regression_baseline.py``; prints each scenario's figures.
Review the diff of ``baseline.json`` before committing it: a figure that got worse is a regression.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "regression"))

from regression_harness import write_baseline


def main() -> int:
    data = write_baseline()
    for name, fig in data["scenarios"].items():
        causes = ", ".join(f"{c} {n}" for c, n in fig["causes"].items() if n)
        print(
            f"{name:<22} passed {fig['targets_passed']:>3}  recovery {fig['recovery']:.4f}  purity {fig['purity']:.4f}  "
            f"p99 {fig['fire_error_p99_mm']} mm  causes: {causes or 'none'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
