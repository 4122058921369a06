"""``sorter record``: run the line and record every processed frame with its stamps, and the controller's reports."""

from __future__ import annotations

import argparse
from pathlib import Path

from sorter.commands import run as run_cmd
from sorter.commands.common import load_or_report

HELP = "run the line (as `sorter run`) and record frames, capture stamps and controller reports into a folder for replay"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, metavar="DIR", help="new recording folder (never overwritten)")
    run_cmd.add_arguments(p)


def main(args: argparse.Namespace) -> int:
    cfg = load_or_report(args)
    if cfg is None:
        return 2
    rc = run_cmd.execute(args, cfg, record_dir=args.out)
    if rc == 0:
        from sorter.sweep.truth import write_world_file

        write_world_file(args.out, cfg)  # a simulated recording keeps its world: replays of it are scored (sorter sweep)
    return rc
