"""``sorter report``: what went by, from the event store: composition, throughput, quality estimates, alerts.

HTML, PNG and PDF are for people (charts drawn with matplotlib: ``pip install
'sorter[report]'``); CSV and Parquet (``pyarrow``, same extra) are for the
plant's BI tools, one table at a time (``--table buckets|events|alerts``).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sorter.commands.common import add_config_arguments

HELP = "summarise the event store (composition, throughput, quality estimates, alerts) as HTML, PNG, PDF, CSV or Parquet"

_REL = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FORMATS = ("html", "png", "pdf", "csv", "parquet")
_NEEDS = {"png": ("matplotlib", "--format png"), "pdf": ("matplotlib", "--format pdf"),
          "parquet": ("pyarrow.parquet", "--format parquet")}


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
        raise ValueError(f"cannot read the bucket {text!r}: use e.g. 1m, 15m, 1h, 1d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--store", default=None, metavar="PATH", help="event store (default: analytics.store of the config)")
    p.add_argument("--line", default=None, help="the line to report from a shared PostgreSQL store (default: line.name)")
    p.add_argument("--since", default="24h", help="start: 30m, 2h, 7d or an ISO time (default 24h)")
    p.add_argument("--until", default="now", help="end: like --since (default now)")
    p.add_argument("--bucket", default=None,
                   help="bucket size, aligned to the clock: 1m, 5m, 15m, 1h, 1d... (default: about 48 over the running time)")
    p.add_argument("--tz", default="UTC", metavar="ZONE",
                   help="time zone of the buckets and of every time shown: UTC (default), an IANA name such as "
                        "Europe/Berlin, or local")
    p.add_argument("--format", choices=FORMATS, default="html",
                   help="html, png, pdf (charts: needs the 'report' extra), csv, parquet (needs the 'report' extra)")
    p.add_argument("--table", choices=("buckets", "events", "alerts"), default="buckets",
                   help="for csv and parquet: one row per bucket (default), per stored event, or per alert")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="output file (default: stdout for csv)")


def _alerts_config(cfg: Any) -> Any:
    """``analytics.alerts`` of the config."""
    return cfg.analytics.alerts


def _merge_alerts(stored: list[Any], evaluated: list[Any]) -> list[Any]:
    """The stored alerts, plus those the report's own evaluation found that no stored alert of the rule overlaps."""
    import dataclasses

    out = list(stored)
    for a in evaluated:
        a_end = a.t_end_ns if a.t_end_ns is not None else 2**62
        clash = any(s.rule == a.rule and s.t_start_ns < a_end and (s.t_end_ns is None or s.t_end_ns > a.t_start_ns)
                    for s in stored)
        if not clash:
            out.append(dataclasses.replace(a, message=a.message + " [evaluated by this report]"))
    return out


def main(args: argparse.Namespace) -> int:
    from sorter.analytics.alert_eval import evaluate_history
    from sorter.analytics.alerts import threshold_of
    from sorter.analytics.extras import require
    from sorter.analytics.report import build_report
    from sorter.analytics.store import EventStoreError, describe_store, is_postgres, open_store, sqlite_path
    from sorter.analytics.timebins import resolve_zone
    from sorter.errors import SorterError
    from sorter.runtime.preflight import load_line_config

    try:
        if args.format in _NEEDS:
            require(*_NEEDS[args.format])  # before reading anything: say what to install first
        cfg = load_line_config(args.config, args.set)
        store_path = args.store or cfg.analytics.store
        line = args.line or cfg.line.name
        if store_path is None:
            raise ValueError("no event store: pass --store PATH or set analytics.store in the config")
        zone, zone_label = resolve_zone(args.tz)
        now = time.time_ns()
        t0, t1 = parse_time(args.since, now), parse_time(args.until, now)
        if t1 <= t0:
            raise ValueError(f"--until ({args.until}) must be after --since ({args.since})")
        bucket_s = parse_duration_s(args.bucket) if args.bucket else None
        if args.out is None and args.format != "csv":
            raise ValueError(f"--format {args.format} needs --out FILE")
        sqlite_file = sqlite_path(str(store_path))
        if sqlite_file is not None and not sqlite_file.exists():
            raise ValueError(f"event store {store_path} does not exist (is analytics.store set on the running line?)")
        store = open_store(str(store_path), line=line)
        if is_postgres(str(store_path)):
            store_path = f"{describe_store(str(store_path))} (line {line})"  # never print a password
        try:
            events = store.events(since_ns=t0, until_ns=t1)
            try:
                stored_alerts = store.alerts(since_ns=t0, until_ns=t1)
            except EventStoreError as e:
                print(f"warning: alerts not listed: {e}", file=sys.stderr)
                stored_alerts = []
        finally:
            store.close()
        report = build_report(events, t_start_ns=t0, t_end_ns=t1, bucket_s=bucket_s, zone=zone, zone_label=zone_label,
                              targets=cfg.policy.targets, line=line, mode=cfg.line.mode)
        alerts_cfg = _alerts_config(cfg)
        evaluated = []
        if report.running_start_ns is not None and report.running_end_ns is not None:
            evaluated = evaluate_history(alerts_cfg, events, targets=cfg.policy.targets,
                                         t_begin_ns=report.running_start_ns, t_end_ns=report.running_end_ns, verb=report.verb)
        in_force = [(rule.rule_name, rule.kind, threshold_of(rule)[0]) for rule in alerts_cfg.rules]
        report = report.with_alerts(_merge_alerts(stored_alerts, evaluated), in_force)
        _write(args, report, events)
    except (SorterError, ValueError, OSError) as e:
        print(f"cannot report: {e}", file=sys.stderr)
        return 2
    t = report.totals
    print(f"{t.total} objects, {t.n_actuated} {report.verb}, {len(report.alerts)} alert(s), from {store_path}"
          + (f" -> {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def _write(args: argparse.Namespace, report: Any, events: list[Any]) -> None:
    """Write ``report`` in ``args.format`` to ``args.out`` (CSV without ``--out``: stdout)."""
    from sorter.analytics import charts, export, render

    out: Path | None = args.out
    if args.format in ("csv", "parquet"):
        table = {"buckets": lambda: export.bucket_table(report),
                 "events": lambda: export.event_table(report.line, events),
                 "alerts": lambda: export.alert_table(report.line, report.alerts)}[args.table]()
        if args.format == "parquet":
            assert out is not None
            export.write_parquet(table, report, out)
        elif out is None:
            sys.stdout.write(export.to_csv(table, report))
        else:
            out.write_text(export.to_csv(table, report), encoding="utf-8")
        return
    assert out is not None
    if args.format == "html":
        page, missing = render.to_html(report)
        out.write_text(page, encoding="utf-8")
        if missing:
            print(f"warning: the page has no charts: {missing}", file=sys.stderr)
    elif args.format == "png":
        out.write_bytes(charts.to_png(report))
    else:
        out.write_bytes(charts.to_pdf(report))
