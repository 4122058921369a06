"""Arguments and helpers shared by subcommands."""

from __future__ import annotations

import argparse
import sys

from sorter.config import Config
from sorter.errors import ConfigError


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        action="append",
        metavar="PATH",
        help="YAML config; repeat to layer per-site overrides (default: configs/sim-airjet.yaml)",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one key, e.g. sim.density_per_m2=5")


def load_or_report(args: argparse.Namespace) -> Config | None:
    """Load the config named by the arguments (schema and physics); print every problem and return None on error."""
    from sorter.runtime.preflight import load_line_config

    try:
        return load_line_config(args.config, args.set)
    except ConfigError as e:
        print("Configuration problems:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        return None
