"""``sorter dataset``: build a content-hashed dataset from labelled batches, split by recording and time; report its balance."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sorter.errors import SorterError

HELP = "build a dataset (content-hashed manifest, splits by time or recording, balance report) from labelled batches"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="dataset_cmd", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build a dataset folder from labelled batches")
    b.add_argument("out", type=Path, metavar="DIR", help="new dataset folder")
    b.add_argument("--batch", type=Path, action="append", default=[], metavar="BATCH", help="labelled batch (repeatable)")
    b.add_argument(
        "--eval-batch",
        type=Path,
        action="append",
        default=[],
        metavar="BATCH",
        help="labelled batch used only for validation and test, never trained on (repeatable)",
    )
    b.add_argument(
        "--split", choices=("time", "recording"), default="time", help="split by capture time (default) or by recording"
    )
    b.add_argument("--test-fraction", type=float, default=0.25)
    b.add_argument("--val-fraction", type=float, default=0.0)
    b.add_argument(
        "--test-at", type=float, default=1.0, help="time split: where the test block lies, 0 start .. 1 end (default 1)"
    )
    b.add_argument(
        "--guard-s",
        type=float,
        default=2.0,
        help="time split: frames this close to a block boundary are dropped (>= the time an object stays in view)",
    )
    b.add_argument(
        "--test-recording",
        action="append",
        default=[],
        metavar="NAME",
        help="recording split: this recording is the test set (repeatable; default: drawn from --seed)",
    )
    b.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("report", help="print a dataset's balance report and check its identity")
    r.add_argument("dataset", type=Path, metavar="DIR")


def main(args: argparse.Namespace) -> int:
    from sorter.train.data.balance import balance_report, format_report
    from sorter.train.data.batch import read_batch
    from sorter.train.data.manifest import build_dataset, read_manifest, verify
    from sorter.train.data.splits import SplitConfig

    try:
        if args.dataset_cmd == "build":
            try:
                split = SplitConfig(
                    args.split,
                    args.test_fraction,
                    args.val_fraction,
                    args.test_at,
                    args.guard_s,
                    args.seed,
                    tuple(args.test_recording),
                )
            except ValueError as e:
                print(f"sorter dataset build: {e}", file=sys.stderr)
                return 2
            manifest = build_dataset(
                args.out, [read_batch(b) for b in args.batch], split, [read_batch(b) for b in args.eval_batch]
            )
            report = balance_report(manifest["items"], manifest["class_names"])
            (args.out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
            print(
                f"dataset {args.out}: hash {manifest['hash'][:16]}, {manifest['counts']} "
                f"({manifest['dropped_guard']} frames dropped at split boundaries)"
            )
            for line in format_report(report):
                print("  " + line)
            return 0
        manifest = read_manifest(args.dataset)
        problems = verify(args.dataset)
        report = balance_report(manifest["items"], manifest["class_names"])
        print(f"dataset {args.dataset}: hash {manifest['hash'][:16]}, {manifest['counts']}")
        for line in format_report(report):
            print("  " + line)
        for prob in problems:
            print(f"  PROBLEM: {prob}", file=sys.stderr)
        return 1 if problems else 0
    except SorterError as e:
        print(f"sorter dataset: {e}", file=sys.stderr)
        return 2
