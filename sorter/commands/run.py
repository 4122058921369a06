"""``sorter run``: run a line (the simulated line when no hardware is configured)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from sorter.commands.common import add_config_arguments, load_or_report
from sorter.config import Config

HELP = "run the sorting line (default: the simulated air-jet line) with a live status and a final summary"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds of belt to run (default: until Ctrl-C; 60 with --fast)",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="simulated time, as fast as the machine allows: each stage charged its modelled time from the latency "
        "profile (runtime.latency_profile), so the same seed and profile give the same figures under any load",
    )
    p.add_argument(
        "--charge",
        choices=("profile", "wall"),
        default=None,
        help="with --fast: charge the profile's modelled stage times (default, deterministic) or this machine's own "
        "(wall; the figures then depend on the machine and its load); sets runtime.charge",
    )
    p.add_argument("--summary", type=Path, default=None, metavar="PATH", help="write the run summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no live status")
    p.add_argument(
        "--explain",
        action="store_true",
        help="simulated line: give every target missed and every non-target removed one primary cause "
        "(table printed, section 'explain' in the summary JSON)",
    )
    p.add_argument(
        "--explain-strip",
        type=Path,
        default=None,
        metavar="PNG",
        help="with --explain: write an image strip of the worst cases here (default: beside --summary, as .explain.png)",
    )


def main(args: argparse.Namespace) -> int:
    cfg = load_or_report(args)
    if cfg is None:
        return 2
    return execute(args, cfg)


def execute(
    args: argparse.Namespace,
    cfg: Config,
    *,
    replay_dir: Path | None = None,
    record_dir: Path | None = None,
    replay_source: Any = None,
    replay_gaps: Any = None,
) -> int:
    """Build the line, run it (live, ``--fast``, or a replay of ``replay_dir``), print and write the summary.

    Args:
        replay_source: an opened ``RecordingSource`` to replay (instead of ``replay_dir``).
        replay_gaps: the recording's :class:`~sorter.capture.recording_gaps.GapReport`, for the replay summary.
    """
    from sorter.errors import SorterError
    from sorter.runtime.line import build_line
    from sorter.runtime.loops import run_line
    from sorter.runtime.preflight import load_line_config
    from sorter.runtime.service_setup import start_service
    from sorter.runtime.summary_text import human_summary

    fast = bool(getattr(args, "fast", False))
    charge = getattr(args, "charge", None)
    if charge is not None:
        cfg = cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update={"charge": charge})})
    duration = args.duration if args.duration is not None else (cfg.runtime.duration_s or (60.0 if fast else None))
    replaying = replay_source is not None or replay_dir is not None
    try:
        if replay_source is None and replay_dir is not None:
            from sorter.capture.recording import RecordingSource

            replay_source = RecordingSource(replay_dir)
        line = build_line(cfg, fast=fast, replay=replaying)
    except (SorterError, ValueError) as e:
        print(f"cannot start: {e}", file=sys.stderr)
        return 2
    try:
        if record_dir is not None:
            from sorter.capture.recording import RecordingWriter

            counters = line.counters
            line.recorder = RecordingWriter(
                record_dir, cfg.camera.fps, cfg.line.name,
                loop_counts=lambda: (counters.frames, counters.frames_dropped + counters.frames_dropped_slot_live),
            )
        if getattr(args, "explain", False):
            _attach_explain(line, cfg)
        service, server = start_service(line, lambda: load_line_config(args.config, args.set))
    except (SorterError, OSError) as e:
        line.close()
        print(f"cannot start: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    t_signal: list[float] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not t_signal:
            t_signal.append(time.monotonic())
        stop.set()

    def on_hup(signum: int, _frame: FrameType | None) -> None:
        # reload waits for the main loop to apply it between frames: never from the main thread itself
        threading.Thread(target=service.reload, name="reload", daemon=True).start()

    old_term = signal.signal(signal.SIGTERM, on_signal)
    old_int = signal.signal(signal.SIGINT, on_signal)
    old_hup = signal.signal(signal.SIGHUP, on_hup)
    status, warnings = _status(args)
    try:
        summary = run_line(line, duration, fast, stop, status, replay_source=replay_source)
        if t_signal:  # SIGTERM/SIGINT to everything stopped, valves closed and events stored
            summary["drain_s"] = round(time.monotonic() - t_signal[0], 3)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGHUP, old_hup)
        if warnings is not None:
            logging.getLogger().removeHandler(warnings)
        if server is not None:
            server.close()
        service.close()
        service.notifier.close()
    _complete_summary(summary, line, service, replay_source, replay_gaps)
    if line.explain is not None:
        _add_explain(summary, line, args)
    print(human_summary(summary))
    if "explain" in summary:
        from sorter.sim.explain import cause_table

        print(cause_table(summary["explain"], max_cases=20))
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


def _status(args: argparse.Namespace) -> tuple[Any, Any]:
    """The live status callback (None with ``--quiet``) and, on a terminal, the warnings its panel keeps."""
    if args.quiet:
        return None, None
    from sorter.runtime.status import RecentWarnings, status_printer

    tty = sys.stdout.isatty()
    warnings = None
    if tty:  # the screen is redrawn: warnings printed between two redraws would vanish, so the panel keeps them
        warnings = RecentWarnings()
        logging.getLogger().addHandler(warnings)
    return status_printer(tty, sys.stdout, warnings), warnings


def _complete_summary(summary: dict[str, Any], line: Any, service: Any, replay_source: Any, replay_gaps: Any) -> None:
    """Add what the service and the recording know: fault counts, whether a simulator scored the run, replay coverage."""
    book = service.fault_book
    book.observe_actuator(summary.get("actuator") or {}, time.time())
    summary["faults"] = book.counts()
    summary["ground_truth"] = line.scoreboard is not None
    if replay_source is not None:
        replayed = int(getattr(replay_source, "frames_read", summary.get("frames", 0)))
        gaps = replay_gaps.as_dict() if replay_gaps is not None else {}
        captured = int(gaps.get("frames_captured", replayed))
        summary["replay"] = {
            "frames_replayed": replayed,
            "frames_captured": captured,
            "frames_missing": max(0, captured - replayed),
            "missing_share": round(max(0, captured - replayed) / captured, 5) if captured else 0.0,
            "longest_gap_ms": gaps.get("longest_gap_ms", 0.0),
            "warnings": [*replay_gaps.refuse, *replay_gaps.warn] if replay_gaps is not None else [],
        }


def _attach_explain(line: Any, cfg: Config) -> None:
    """Collect what ``--explain`` needs; only a simulated line knows the truth."""
    from sorter.errors import ConfigError
    from sorter.runtime.explain_recorder import ExplainRecorder
    from sorter.sim.plant import SimPlant

    if not isinstance(line.plant, SimPlant):
        raise ConfigError(
            f"--explain needs the simulated line (camera.type: sim), not camera.type = {cfg.camera.type!r}; "
            "run it on the simulated line, or drop --explain"
        )
    line.explain = ExplainRecorder(min_score=cfg.detector.min_score)


def _add_explain(summary: dict[str, Any], line: Any, args: argparse.Namespace) -> None:
    from sorter.runtime.explain_recorder import explain_line

    strip = args.explain_strip
    if strip is None and args.summary is not None:
        strip = args.summary.with_suffix(".explain.png")
    summary["explain"] = explain_line(line.explain, line.plant, strip)
