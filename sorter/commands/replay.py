"""``sorter replay``: re-run the pipeline on a recording, deterministically, to compare configs on the same footage.

The clock of the replay is each frame's recorded capture stamp and the odometer
its recorded value, so the same recording and config always give the same
summary. Actuation is always a dry run: a replay never fires valves.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sorter.commands import run as run_cmd
from sorter.commands.common import add_config_arguments, load_or_report

HELP = "re-run the pipeline on a recording with a config (deterministic; never actuates) and write a summary"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", type=Path, metavar="RECORDING", help="folder written by `sorter record`")
    add_config_arguments(p)
    p.add_argument("--summary", type=Path, default=None, metavar="PATH", help="write the replay summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no live status")


def main(args: argparse.Namespace) -> int:
    cfg = load_or_report(args)
    if cfg is None:
        return 2
    args.duration = None
    return run_cmd.execute(args, cfg, replay_dir=args.recording)
