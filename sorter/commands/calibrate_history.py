"""``sorter calibrate history``: the stored versions of a machine's calibration, and whether the latest is usable."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sorter.config import Config


def history(args: argparse.Namespace, line_config: Callable[[argparse.Namespace], Config | None]) -> int:
    """List the versions and judge the latest exactly as ``sorter check``/``run`` do (for --config, or a real line).

    ``line_config`` loads the line's config from ``--config``/``--set`` (the calibrate command's loader).
    """
    from sorter.calib_store import CalibrationStore, load_calibration
    from sorter.calib_store.line import LineNeeds, provenance_of, usability_problems
    from sorter.runtime.calibrated import line_needs

    store = CalibrationStore(args.store, args.machine)
    versions = store.versions()
    if not versions:
        print(f"no calibration stored for machine '{args.machine}' under {args.store}")
        return 1
    for p in versions:
        cal = load_calibration(p)
        made = []
        for k, s in cal.sections.items():
            prov = provenance_of(s) if isinstance(s, dict) else "?"
            version = int(s.get("version", 0)) if isinstance(s, dict) else 0
            made.append(f"{k}@v{version}" + ("" if prov == "measured" else f" ({prov})"))
        print(f"{p.name}  {', '.join(made)}")
    latest = load_calibration(versions[-1])
    if args.config or args.set:
        cfg = line_config(args)
        assert cfg is not None
        needs, who = line_needs(cfg), f"line '{cfg.line.name}'"
    else:
        needs, who = LineNeeds(camera_real=True, plant_real=True), "a real line"
    problems = usability_problems(latest, needs)
    verdict = "valid" if not problems else "REFUSED: " + "; ".join(problems)
    print(f"latest: {versions[-1]}: for {who} ({needs.describe()}): {verdict}")
    return 0 if not problems else 1
