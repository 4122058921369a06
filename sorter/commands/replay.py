"""``sorter replay``: re-run the pipeline on a recording, deterministically, to compare configs on the same footage.

The clock of the replay is each frame's recorded capture stamp and the odometer
its recorded value, so the same recording and config always give the same
summary. Actuation is always a dry run: a replay never fires valves.

A recording that misses frames (made on a loaded machine) is measured first: a
few missing frames give a warning, and a replay whose scores would mean nothing
(too many frames missing, or a gap an object could cross the view in) is
refused with the reason unless ``--allow-gaps`` says to go on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sorter.commands import run as run_cmd
from sorter.commands.common import add_config_arguments, load_or_report

if TYPE_CHECKING:
    from sorter.capture.recording import RecordingSource
    from sorter.capture.recording_gaps import GapReport
    from sorter.config import Config

HELP = "re-run the pipeline on a recording with a config (deterministic; never actuates) and write a summary"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sorter.capture.recording_gaps import DEFAULT_MAX_MISSING_SHARE

    p.add_argument("recording", type=Path, metavar="RECORDING", help="folder written by `sorter record`")
    add_config_arguments(p)
    p.add_argument("--summary", type=Path, default=None, metavar="PATH", help="write the replay summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no live status")
    p.add_argument(
        "--max-missing-pct",
        type=float,
        default=100 * DEFAULT_MAX_MISSING_SHARE,
        metavar="PCT",
        help="refuse a recording missing more than this share of the captured frames "
        f"(default {100 * DEFAULT_MAX_MISSING_SHARE:g})",
    )
    p.add_argument(
        "--allow-gaps",
        action="store_true",
        help="replay a recording whose gaps make its scores meaningless anyway (the summary still says what is missing)",
    )


def assess(source: RecordingSource, cfg: Config, max_missing_pct: float) -> GapReport:
    """The recording's gaps, judged against the config's camera view and tracker."""
    from sorter.capture.recording_gaps import assess_gaps
    from sorter.runtime.params import inner_view_y_mm
    from sorter.runtime.plant import camera_model

    y_min_mm, y_max_mm = inner_view_y_mm(camera_model(cfg))
    return assess_gaps(
        source.stamps(),
        source.info.fps,
        source.meta,
        view_length_mm=max(0.0, y_max_mm - y_min_mm),
        max_missing_share=max(0.0, max_missing_pct) / 100.0,
        warn_gap_ms=max(3 * 1000.0 / source.info.fps if source.info.fps > 0 else 0.0, cfg.tracker.max_unseen_ms / 2),
    )


def main(args: argparse.Namespace) -> int:
    cfg = load_or_report(args)
    if cfg is None:
        return 2
    args.duration = None
    from sorter.capture.recording import RecordingSource
    from sorter.errors import SorterError
    from sorter.runtime.line import replay_config

    try:
        replay_config(cfg)  # a config that cannot replay is refused before the recording is judged
        source = RecordingSource(args.recording)
        gaps = assess(source, cfg, args.max_missing_pct)
    except (SorterError, ValueError, OSError) as e:
        print(f"cannot start: {e}", file=sys.stderr)
        return 2
    where = args.recording
    for reason in gaps.warn:
        print(f"warning: recording {where}: {reason}; scores of this replay undercount", file=sys.stderr)
    if gaps.refuse:
        for reason in gaps.refuse:
            print(f"recording {where}: {reason}", file=sys.stderr)
        if not args.allow_gaps:
            print(
                f"refused: the gaps of {where} make the replay's scores meaningless; record again on a less loaded "
                "machine (or a lower camera rate), or pass --allow-gaps to replay it anyway",
                file=sys.stderr,
            )
            return 2
        print("replaying anyway (--allow-gaps): read the scores with the gaps in mind", file=sys.stderr)
    return run_cmd.execute(args, cfg, replay_source=source, replay_gaps=gaps)
