"""``sorter report``: what went by, from the event store: composition by class over time, throughput, ejections."""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sorter.commands.common import add_config_arguments

HELP = "summarise the event store (composition by class over time, throughput, ejections) as HTML, CSV or PNG"

_REL = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now_ns: int) -> int:
    """``2h`` (that long ago), ``now``, or an ISO date/time (UTC unless it says otherwise) -> epoch ns."""
    t = text.strip()
    if t == "now":
        return now_ns
    m = _REL.match(t)
    if m:
        return now_ns - round(float(m.group(1)) * _UNIT_S[m.group(2)] * 1e9)
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"cannot read the time {text!r}: use e.g. 30m, 2h, 7d, now, or 2026-11-23T08:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1e9)


def parse_duration_s(text: str) -> float:
    m = _REL.match(text.strip())
    if not m:
        raise ValueError(f"cannot read the bucket {text!r}: use e.g. 1m, 15m, 1h")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--store", default=None, metavar="PATH", help="event store (default: analytics.store of the config)")
    p.add_argument("--line", default=None, help="the line to report from a shared PostgreSQL store (default: line.name)")
    p.add_argument("--since", default="24h", help="start: 30m, 2h, 7d or an ISO time (default 24h)")
    p.add_argument("--until", default="now", help="end: like --since (default now)")
    p.add_argument("--bucket", default=None, help="time bucket, e.g. 1m, 1h (default: about 48 buckets)")
    p.add_argument("--format", choices=("html", "csv", "png"), default="html")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="output file (default: stdout for csv)")


def main(args: argparse.Namespace) -> int:
    from sorter.analytics.render import to_csv, to_html, to_png
    from sorter.analytics.report import build_report
    from sorter.analytics.store import describe_store, is_postgres, open_store, sqlite_path
    from sorter.errors import SorterError
    from sorter.runtime.preflight import load_line_config

    try:
        cfg = load_line_config(args.config, args.set)
        store_path = args.store or cfg.analytics.store
        line = args.line or cfg.line.name
        if store_path is None:
            raise ValueError("no event store: pass --store PATH or set analytics.store in the config")
        now = time.time_ns()
        t0, t1 = parse_time(args.since, now), parse_time(args.until, now)
        if t1 <= t0:
            raise ValueError(f"--until ({args.until}) must be after --since ({args.since})")
        bucket_s = parse_duration_s(args.bucket) if args.bucket else max(1.0, (t1 - t0) / 48e9)
        if args.format != "csv" and args.out is None:
            raise ValueError(f"--format {args.format} needs --out FILE")
        sqlite_file = sqlite_path(str(store_path))
        if sqlite_file is not None and not sqlite_file.exists():
            raise ValueError(f"event store {store_path} does not exist (is analytics.store set on the running line?)")
        store = open_store(str(store_path), line=line)
        if is_postgres(str(store_path)):
            store_path = f"{describe_store(str(store_path))} (line {line})"  # never print a password
        try:
            events = store.events(since_ns=t0, until_ns=t1)
        finally:
            store.close()
        report = build_report(events, t0, t1, bucket_s)
    except (SorterError, ValueError) as e:
        print(f"cannot report: {e}", file=sys.stderr)
        return 2
    if args.format == "csv":
        text = to_csv(report)
        if args.out is None:
            sys.stdout.write(text)
        else:
            args.out.write_text(text, encoding="utf-8")
    elif args.format == "html":
        args.out.write_text(to_html(report, f"sorter report: {store_path}"), encoding="utf-8")
    else:
        args.out.write_bytes(to_png(report))
    n = sum(report.objects.values())
    print(f"{n} objects, {sum(report.ejected.values())} ejected, from {store_path}" + (f" -> {args.out}" if args.out else ""),
          file=sys.stderr)
    return 0
