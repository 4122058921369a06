#!/usr/bin/env python3
"""Event-store throughput: events per second per batch write and through the background writer, SQLite and PostgreSQL.

    .venv/bin/python scripts/bench_event_store.py [--events 50000] [--batch 256] [--postgres postgresql://user@host/db]

A sorting line finishes a few to a few dozen tracks per second; the store has
to take that with a wide margin while it shares the box with the detector.
Prints a table: events/s for ``add_batch`` alone, events/s through
:class:`EventWriter` (submit -> batches -> store, until flushed), the cost of one
``submit`` on the hot path (µs), and bytes per event on disk (SQLite).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sorter.analytics import EventWriter, TrackEvent, open_store  # noqa: E402


def _events(n: int) -> list[TrackEvent]:
    t0 = time.time_ns()
    return [
        TrackEvent(t0 + i * 1000, i, i + 5, i, ("pet_bottle", "alu_can", "film")[i % 3], 0.9, 120.0, 60.0, 300.0 + i % 900,
                   -400.0, 6, "eject" if i % 2 else "pass", (i,) if i % 2 else (), "executed" if i % 2 else None)
        for i in range(n)
    ]


def bench(url: str, n: int, batch: int, line: str) -> dict[str, float]:
    events = _events(n)
    store = open_store(url, line=line)
    try:
        t = time.perf_counter()
        for i in range(0, n, batch):
            store.add_batch(events[i : i + batch])
        batch_s = time.perf_counter() - t
        writer = EventWriter(store, batch_size=batch, flush_interval_s=0.05)
        t = time.perf_counter()
        for e in events:
            writer.submit(e)
        submit_s = time.perf_counter() - t
        ok = writer.flush(120.0)
        writer_s = time.perf_counter() - t
        writer.close()
        if not ok or writer.written != n:
            raise SystemExit(f"writer wrote {writer.written} of {n}")
        total = store.count()
    finally:
        store.close()
    out = {"batch_ev_s": n / batch_s, "writer_ev_s": n / writer_s, "submit_us": submit_s / n * 1e6, "stored": total}
    path = Path(url)
    if path.exists():
        out["bytes_per_event"] = path.stat().st_size / total
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--postgres", default=None, metavar="URL", help="also measure a PostgreSQL store (a test database)")
    args = p.parse_args()
    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as d:
        db = str(Path(d) / "events.db")
        open_store(db).close()
        rows.append(("sqlite (WAL, synchronous=NORMAL)", bench(db, args.events, args.batch, "bench")))
    if args.postgres:
        rows.append(("postgresql (COPY per batch)", bench(args.postgres, args.events, args.batch, f"bench-{time.time_ns()}")))
    print(f"{args.events} events, batches of {args.batch}")
    print("| store | add_batch ev/s | through the writer ev/s | submit µs | bytes/event |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        bpe = f"{r['bytes_per_event']:.0f}" if "bytes_per_event" in r else "-"
        print(f"| {name} | {r['batch_ev_s']:,.0f} | {r['writer_ev_s']:,.0f} | {r['submit_us']:.2f} | {bpe} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
