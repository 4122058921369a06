#!/usr/bin/env python3
"""Soak test: run the simulated line live as a service for a long time and watch memory, backlog and the endpoint.

    .venv/bin/python scripts/soak.py --minutes 30 --json runs/soak.json [-- extra `sorter run` arguments]

Starts ``sorter run`` (live, HTTP endpoint on a free port, event store in a
temporary folder), then every ``--every`` seconds reads the process's resident
memory (``/proc/PID/status``), scrapes ``/metrics`` and times the answer.
Memory growth is measured from the end of the warm-up. Prints a table and
the verdicts against the targets (growth <= 50 MB, no frame backlog, the
endpoint answering), and writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def _metrics(port: int) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    dt_ms = (time.perf_counter() - t0) * 1e3
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return dt_ms, values


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))] if s else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--warmup-minutes", type=float, default=2.0)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("extra", nargs="*", help="extra `sorter run` arguments (after --)")
    args = ap.parse_args()
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "sorter.cli", "run", "--quiet", "--summary", f"{tmp}/summary.json",
               "--set", f"service.http_port={port}", "--set", f"analytics.store={tmp}/events.db", *args.extra]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples: list[dict[str, Any]] = []
        failures = 0
        t_start = time.monotonic()
        try:
            while time.monotonic() - t_start < args.minutes * 60:
                time.sleep(args.every)
                if proc.poll() is not None:
                    err = proc.stderr.read() if proc.stderr else ""
                    raise RuntimeError(f"the service exited early with {proc.returncode}: {err}")
                try:
                    dt_ms, m = _metrics(port)
                except OSError:
                    failures += 1
                    continue
                s = {"t_min": round((time.monotonic() - t_start) / 60, 2), "rss_mb": round(_rss_mb(proc.pid), 1),
                     "metrics_ms": round(dt_ms, 2), "frames": m.get("sorter_frames_total", 0.0),
                     "dropped": m.get("sorter_frames_dropped_total", 0.0), "fps": m.get("sorter_frame_rate_fps", 0.0)}
                samples.append(s)
                print(f"{s['t_min']:6.2f} min  rss {s['rss_mb']:7.1f} MB  fps {s['fps']:5.1f}  "
                      f"frames {int(s['frames'])}  dropped {int(s['dropped'])}  /metrics {s['metrics_ms']:.1f} ms", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        summary = json.loads(Path(f"{tmp}/summary.json").read_text()) if Path(f"{tmp}/summary.json").exists() else {}
    warm = [s for s in samples if s["t_min"] >= args.warmup_minutes]
    growth = warm[-1]["rss_mb"] - warm[0]["rss_mb"] if len(warm) >= 2 else float("nan")
    peak_growth = max(s["rss_mb"] for s in warm) - warm[0]["rss_mb"] if warm else float("nan")
    drop_frac = summary.get("frames_dropped_fraction", float("nan"))
    result = {
        "minutes": args.minutes,
        "samples": samples,
        "rss_after_warmup_mb": warm[0]["rss_mb"] if warm else None,
        "rss_end_mb": warm[-1]["rss_mb"] if warm else None,
        "rss_growth_mb": round(growth, 1),
        "rss_peak_growth_mb": round(peak_growth, 1),
        "metrics_ms_p50": _pct([s["metrics_ms"] for s in samples], 0.5),
        "metrics_ms_max": max((s["metrics_ms"] for s in samples), default=float("nan")),
        "metrics_failures": failures,
        "frames": summary.get("frames"),
        "frames_dropped_fraction": drop_frac,
        "events": summary.get("events"),
        "latency_ms": summary.get("latency_ms"),
    }
    print()
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| memory growth after {args.warmup_minutes:g} min warm-up (end / peak) | {growth:.1f} / {peak_growth:.1f} MB "
          "| <= 50 MB |")
    print(f"| frames dropped | {100 * drop_frac:.2f} % of {summary.get('frames')} | no backlog (latest-frame slot) |")
    print(f"| /metrics answer p50 / max | {result['metrics_ms_p50']:.1f} / {result['metrics_ms_max']:.1f} ms, "
          f"{failures} failures | answers under load |")
    print(f"| events stored | {summary.get('events')} | every finished track |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0 if growth <= 50 and failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
