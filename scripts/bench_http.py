#!/usr/bin/env python3
"""HTTP flood benchmark: does a crowd of clients on the endpoint change what the line does?

Runs the simulated line live (``sorter run`` with ``service.http_port`` set) for ``--duration`` seconds twice, back
to back: once with no client, once with ``--clients`` concurrent keep-alive clients (a separate load process, asyncio)
fetching ``/frame.jpg`` and ``/metrics`` as fast as they are answered. Prints one row per run (frames, drops,
recovery, purity, requests served, CPU: ``main cpu s`` of the line's own process, sampled from /proc until it ends;
``all cpu s`` of the line with its web process) and the change that the clients caused. The machine's other load moves both
runs alike only if they run close together: ``--repeat`` runs the pair again (order alternating).

    .venv/bin/python scripts/bench_http.py                       # default line, 60 s, 200 clients
    .venv/bin/python scripts/bench_http.py --duration 20 --clients 50 --set service.http_process=false
    .venv/bin/python scripts/bench_http.py --pythonpath ../old-checkout --clients 50   # another version of sorter

The load process alone: ``scripts/bench_http.py load --port 8080 --clients 200``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("/frame.jpg", "/metrics")


# ----------------------------------------------------------------------------------------------------- load process
async def _client(host: str, port: int, path: str, stop: asyncio.Event, stats: dict[str, Any]) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench_http\r\n\r\n".encode()
    per = stats["paths"].setdefault(path, {"ok": 0, "bytes": 0, "codes": {}})
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (OSError, TimeoutError):
            stats["connect_errors"] += 1
            await asyncio.sleep(0.1)
            continue
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                lines = head.decode("latin-1").split("\r\n")
                code = lines[0].split(" ")[1]
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                n = int(headers.get("content-length", "0"))
                if n:
                    await asyncio.wait_for(reader.readexactly(n), 30)
                per["codes"][code] = per["codes"].get(code, 0) + 1
                if code == "200":
                    per["ok"] += 1
                    per["bytes"] += n
                    stats["latency_ms"].append((time.perf_counter() - t0) * 1e3)
                if headers.get("connection", "").lower() == "close" or lines[0].startswith("HTTP/1.0"):
                    break
        except (OSError, asyncio.IncompleteReadError, TimeoutError, IndexError, ValueError) as e:
            if stop.is_set():
                break
            stats["errors"] += 1
            kind = type(e).__name__
            stats["error_kinds"][kind] = stats["error_kinds"].get(kind, 0) + 1
            await asyncio.sleep(0.05)
        finally:
            writer.close()


async def _load(host: str, port: int, clients: int, duration_s: float | None) -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    stats: dict[str, Any] = {"paths": {}, "errors": 0, "error_kinds": {}, "connect_errors": 0, "latency_ms": []}
    t0 = time.monotonic()
    tasks = [asyncio.create_task(_client(host, port, PATHS[i % len(PATHS)], stop, stats)) for i in range(clients)]
    if duration_s is not None:
        loop.call_later(duration_s, stop.set)
    await stop.wait()
    await asyncio.wait(tasks, timeout=5)
    for t in tasks:
        t.cancel()
    elapsed = time.monotonic() - t0
    lat = sorted(stats.pop("latency_ms"))
    ok = sum(p["ok"] for p in stats["paths"].values())
    ru = resource.getrusage(resource.RUSAGE_SELF)
    stats.update(clients=clients, elapsed_s=round(elapsed, 1), requests_ok=ok, req_per_s=round(ok / elapsed, 1),
                 latency_p50_ms=round(lat[len(lat) // 2], 1) if lat else None,
                 latency_p99_ms=round(lat[int(len(lat) * 0.99)], 1) if lat else None,
                 cpu_s=round(ru.ru_utime + ru.ru_stime, 1))
    return stats


def load_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench_http.py load", description="concurrent keep-alive clients on /frame.jpg and /metrics")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--duration", type=float, default=None, help="seconds (default: until SIGTERM)")
    p.add_argument("--nice", type=int, default=0, help="run the clients at this niceness")
    a = p.parse_args(argv)
    if a.nice:
        os.nice(a.nice)
    print(json.dumps(asyncio.run(_load(a.host, a.port, a.clients, a.duration))), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------------- orchestrator
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(port: int, proc: subprocess.Popen[str], timeout_s: float) -> None:
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the line did not become healthy within {timeout_s:.0f} s")


def _proc_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by process ``pid`` alone, from /proc (None once it is gone)."""
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_children_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(args: argparse.Namespace, clients: int, workdir: Path) -> dict[str, Any]:
    """One `sorter run` of ``args.duration`` s, with ``clients`` load clients from the first healthy answer to the end."""
    port = _free_port()
    summary = workdir / f"summary-{clients}-{time.monotonic_ns()}.json"
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = str(Path(args.pythonpath).resolve())
    cmd = [sys.executable, "-m", "sorter.cli", "run", "--quiet", "--duration", str(args.duration),
           "--summary", str(summary), "--set", f"service.http_port={port}"]
    for c in args.config:
        cmd += ["--config", c]
    for s in args.set:
        cmd += ["--set", s]
    load_avg = os.getloadavg()[0]
    cpu0 = _cpu_children_s()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=args.pythonpath or ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    load: subprocess.Popen[str] | None = None
    try:
        _wait_healthy(port, proc, 120.0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=30) as r:
            uptime_s = float(json.loads(r.read())["uptime_s"])
        if clients:
            # the clients stop two seconds before the line does, so that its shutdown is not counted as failed requests
            load_s = max(1.0, args.duration - uptime_s - 2.0)
            load = subprocess.Popen([sys.executable, __file__, "load", "--port", str(port), "--clients", str(clients),
                                     "--duration", f"{load_s:.1f}", "--nice", str(args.load_nice)],
                                    stdout=subprocess.PIPE, text=True)
        err_chunks: list[str] = []
        reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read() if proc.stderr else ""), daemon=True)
        reader.start()
        main_cpu: float | None = None
        while proc.poll() is None:  # the line's own process (the web server's process is not in this figure)
            main_cpu = _proc_cpu_s(proc.pid) or main_cpu
            time.sleep(0.5)
        reader.join(30)
        err = "".join(err_chunks)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    served: dict[str, Any] = {}
    if load is not None:
        load.send_signal(signal.SIGTERM)
        out, _ = load.communicate(timeout=30)
        served = json.loads(out.strip().splitlines()[-1])
    wall = time.monotonic() - t0
    if "Traceback" in err:
        i = err.index("Traceback")
        print(f"first traceback of the run with {clients} clients:\n{err[i:i + 3000]}", file=sys.stderr)
    s = json.loads(summary.read_text()) if summary.exists() else {}
    line_cpu = _cpu_children_s() - cpu0 - float(served.get("cpu_s", 0.0))
    return {
        "clients": clients, "rc": proc.returncode, "tracebacks": err.count("Traceback"),
        "aborted": "terminate called" in err, "load_avg": round(load_avg, 2), "wall_s": round(wall, 1),
        "frames": s.get("frames"), "frames_dropped": s.get("frames_dropped"),
        "dropped_fraction": s.get("frames_dropped_fraction"), "recovery": s.get("recovery"), "purity": s.get("purity"),
        "executed_late": s.get("commands_executed_late"), "req_per_s": served.get("req_per_s", 0.0),
        "requests_ok": served.get("requests_ok", 0), "http_errors": served.get("errors", 0),
        "error_kinds": served.get("error_kinds", {}),
        "codes": {p: v["codes"] for p, v in served.get("paths", {}).items()},
        "latency_p99_ms": served.get("latency_p99_ms"), "line_cpu_s": round(line_cpu, 1), "load_cpu_s": served.get("cpu_s", 0.0),
        "main_cpu_s": None if main_cpu is None else round(main_cpu, 1),
    }


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'run':>3} {'clients':>7} {'rc':>4} {'load':>5} {'frames':>7} {'dropped':>8} {'drop %':>7} {'recovery':>8} "
            f"{'purity':>7} {'late':>4} {'req/s':>7} {'p99 ms':>7} {'errors':>6} {'main cpu s':>10} {'all cpu s':>9} "
            f"{'load cpu s':>10}")
    print(head)
    print("-" * len(head))
    for i, r in enumerate(rows):
        drop = None if r["dropped_fraction"] is None else 100 * r["dropped_fraction"]
        print(f"{i // 2 + 1:>3} {r['clients']:>7} {r['rc']:>4} {r['load_avg']:>5.2f} {_fmt(r['frames']):>7} "
              f"{_fmt(r['frames_dropped']):>8} {_fmt(drop, '.2f'):>7} {_fmt(r['recovery'], '.4f'):>8} "
              f"{_fmt(r['purity'], '.4f'):>7} "
              f"{_fmt(r['executed_late']):>4} {r['req_per_s']:>7.0f} {_fmt(r['latency_p99_ms']):>7} {r['http_errors']:>6} "
              f"{_fmt(r['main_cpu_s']):>10} {r['line_cpu_s']:>9.1f} {r['load_cpu_s']:>10.1f}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["load"]:
        return load_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=60.0, help="seconds of each run (default 60)")
    p.add_argument("--clients", type=int, default=200, help="concurrent clients in the loaded run (default 200)")
    p.add_argument("--repeat", type=int, default=1, help="pairs of runs (the order alternates)")
    p.add_argument("--config", action="append", default=[], help="line config (default: the default simulated line)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for `sorter run`")
    p.add_argument("--pythonpath", default=None, help="run the sorter found in this folder (e.g. an older checkout)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    p.add_argument("--load-nice", type=int, default=0,
                   help="niceness of the load process (clients are other machines in a plant; here they share the CPUs)")
    args = p.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_http-") as tmp:
        for k in range(args.repeat):
            order = (0, args.clients) if k % 2 == 0 else (args.clients, 0)
            pair = {n: run_once(args, n, Path(tmp)) for n in order}
            rows += [pair[0], pair[args.clients]]
            print_table(rows)
            print()
    print("change caused by the clients (loaded minus quiet run of each pair):")
    for i in range(0, len(rows), 2):
        quiet, busy = rows[i], rows[i + 1]
        if quiet["dropped_fraction"] is None or busy["dropped_fraction"] is None:
            print(f"  pair {i // 2 + 1}: a run wrote no summary")
            continue
        d_drop = 100 * (busy["dropped_fraction"] - quiet["dropped_fraction"])
        d_rec = busy["recovery"] - quiet["recovery"]
        ok = abs(d_drop) < 1.0 and abs(d_rec) < 0.01 and busy["rc"] == 0 and not busy["tracebacks"]
        print(f"  pair {i // 2 + 1}: frames dropped {d_drop:+.2f} points, recovery {d_rec:+.4f}, exit codes "
              f"{quiet['rc']}/{busy['rc']}, tracebacks {busy['tracebacks']}, codes {busy['codes']}, "
              f"client errors {busy['error_kinds']}  "
              f"{'MET' if ok else 'NOT MET'} (targets: < 1 point, < 0.01)")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
