"""The ``sorter`` console script.

Subcommands live in ``sorter/commands/``, one module each, listed explicitly in
``COMMANDS``. Each module exposes ``HELP``, ``add_arguments(parser)`` and
``main(args) -> int`` and imports its heavy dependencies inside ``main`` so
``sorter --help`` stays fast and works without torch or TensorRT.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from sorter import __version__

#: subcommand name -> module under sorter.commands (explicit registry)
COMMANDS: dict[str, str] = {
    "run": "sorter.commands.run",
    "check": "sorter.commands.check",
    "calibrate": "sorter.commands.calibrate",
    "train": "sorter.commands.train",
    "eval-detector": "sorter.commands.eval_detector",
    "hw": "sorter.commands.hw",
    "record": "sorter.commands.record",
    "replay": "sorter.commands.replay",
    "sweep": "sorter.commands.sweep",
    "report": "sorter.commands.report",
    "collect": "sorter.commands.collect",
    "labels": "sorter.commands.labels",
    "dataset": "sorter.commands.dataset",
    "model": "sorter.commands.model",
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sorter", description="Real-time controller for recycling-sorting lines.")
    parser.add_argument("--version", action="version", version=f"sorter {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _load(name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    level = logging.WARNING - 10 * min(int(args.verbose), 2)
    from sorter.runtime.logsetup import configure_logging

    configure_logging(level)
    rc: int = _load(args.command).main(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
