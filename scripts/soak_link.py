#!/usr/bin/env python3
"""Soak the controller links under CPU load: false watchdog trips, heartbeat gaps and outcome accounting.

    .venv/bin/python scripts/soak_link.py [--minutes 10] [--hogs 2] [--lines serial,modbus] [--in-process]
        [--serial-rig direct|socat] [--rate-hz 20] [--peer-nice N] [--scrape URL] [--json FILE]

The measurement of record (0 false watchdog trips in 10 min, 2 CPU hogs, both lines), on a quiet machine::

    .venv/bin/python scripts/soak_link.py --minutes 10 --hogs 2 --lines serial,modbus --serial-rig direct --json soak.json

Runs the serial line (valve-controller emulator on a pseudo-terminal) and the
Modbus line (PLC emulator, a pymodbus server on loopback TCP) side by side for
``--minutes``. Each emulator runs in its own process (a controller is its own
hardware), raised to SCHED_FIFO where allowed, and times every heartbeat it receives
(the gaps its watchdog sees). The links run as the line runs them: in their own
supervised process (``runtime.link_process``), or with ``--in-process`` in threads of
this process, for comparison.

Meanwhile ``--hogs N`` processes ``python -c 'while True: pass'`` eat the CPUs, a
thread of this process does pure-Python work (the line's vision work holding the
interpreter), commands are submitted at ``--rate-hz`` about 0.3 s of belt ahead, and
an HTTP endpoint is scraped every second: ``--scrape URL`` (a running service's
``/metrics``), else a small ``/metrics`` served by this process itself.

A watchdog trip counted by a controller while its host link was alive (no link process died) is a false trip.

The serial rig: with ``--serial-rig direct`` (default) the emulator process owns a
pseudo-terminal (``PtyMasterPort``: it reads and writes the master) and the link
opens its ``/dev/pts/N`` as it opens a real port: no relay process, and the host's
bytes cross the kernel's tty flip-buffer work (``flush_to_ldisc``, run by shared
kworkers at niceness 0) once, as a real adapter's received bytes do on the host.
With ``--serial-rig socat`` the emulator sits behind a socat pseudo-terminal pair
(the rig the fault-matrix tests use to pull the cable): socat is one more process
that the hogs can starve, and the bytes cross the flip-buffer work twice.
``--peer-nice N`` runs the peer (every thread of the emulator process, and socat)
at niceness N; the table reads back at which policy and niceness they really ran.

Where a gap comes from: ``/proc/stat`` is sampled every 100 ms (per CPU: steal,
iowait, irq, softirq, idle) and every heartbeat gap over 100 ms is printed with
what those counters did around it and whether steal rose (on a virtual machine a
vCPU that the hypervisor does not run stalls everything on it), beside the base
rate. The serial host also counts its own late heartbeats, and every 10 ms the
soak reads where the links', emulators' and socat's threads wait in the kernel: a
thread in ``__flush_work`` polls or reads a terminal whose received bytes still
wait for the tty flip-buffer work, run by a kernel worker at normal priority, so
that thread, however high its own priority, waits until the worker gets a CPU.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from soak_cpu import (  # noqa: E402
    CpuSampler,
    WaitSampler,
    attribute_gaps,
    cpu_lines,
    describe_priority,
    gap_lines,
    jiffy_ms,
    renice,
    summarise,
    wait_lines,
)

SPEED_COUNTS_PER_S = 25_000.0
LEAD_S = 0.3
PULSE_COUNTS = 100
LATE_TOLERANCE_COUNTS = 125  # 5 ms of belt: the emulator's tick
WATCHDOG_MS = 100.0
GAP_MS = 100.0  # heartbeat gaps longer than this are printed with the CPUs' counters around them
CPU_SAMPLE_S = 0.1
EMULATOR_RT_PRIORITY = 20


def emulator_main(kind: str, conn: Connection, peer_nice: int | None = None, rig: str = "direct") -> None:
    """A controller emulator in its own process, timing the heartbeats it receives (entry point, spawn).

    With ``peer_nice`` this process runs at that niceness before it starts anything (its threads and
    socat inherit it) and every thread and socat are set to it once running. ``rig``: the serial
    controller owns its pseudo-terminal (``direct``) or sits behind a socat pair (``socat``).
    """
    from firmware_bridge.controller import ControllerLimits
    from firmware_bridge.device import FreeRunningDevice
    from sorter.actuate.link_child import raise_priority

    refused = renice(os.getpid(), peer_nice) if peer_nice is not None else ""
    _, how = raise_priority(EMULATOR_RT_PRIORITY)
    device = FreeRunningDevice(8, SPEED_COUNTS_PER_S)
    stops: list[Any] = []
    emu: Any
    socat_pid: int | None = None
    if kind == "serial":
        from firmware_bridge.emulators.ports import PtyMasterPort
        from firmware_bridge.emulators.valve_controller import ValveControllerEmulator
        from firmware_bridge.pty_pair import PtyPair

        limits = ControllerLimits(queue_capacity=256, watchdog_ms=WATCHDOG_MS)
        if rig == "direct":  # the emulator owns the pty: no relay between the host's writes and its reads
            port = PtyMasterPort()
            emu = ValveControllerEmulator(port, device, limits)
            address: str | int = port.host_path
        else:
            pty = PtyPair().start()
            stops.append(pty.close)
            emu = ValveControllerEmulator(pty.device_path, device, limits)
            address, socat_pid = pty.host_path, pty.pid
    else:
        from firmware_bridge.emulators.plc import PlcEmulator

        emu = PlcEmulator(device, ControllerLimits(queue_capacity=64, watchdog_ms=WATCHDOG_MS), "tcp", "127.0.0.1", 0,
                          scan_s=0.001)
    hb_ns: list[int] = []  # monotonic (system-wide) arrival times: what the watchdog sees
    feed = emu.core.heartbeat

    def timed_heartbeat(wall_ns: int) -> None:
        hb_ns.append(wall_ns)
        feed(wall_ns)

    emu.core.heartbeat = timed_heartbeat
    emu.start()
    if kind != "serial":
        address = emu.port
    if peer_nice is not None:  # the threads started since, and socat, explicitly
        refused = refused or renice(os.getpid(), peer_nice) or (renice(socat_pid, peer_nice) if socat_pid else "")
    conn.send(("up", address, how + (f"; {refused}" if refused else ""), os.getpid(), socat_pid))
    conn.recv()  # stop
    port_counters = asdict(emu.port_counters) if kind == "serial" else {}
    conn.send(("done", hb_ns, asdict(emu.core.counters) | {"port": port_counters}))
    emu.stop()
    for stop in reversed(stops):
        stop()


@dataclass
class LineRun:
    """One line of the soak: its emulator, its link and the commands' fate."""

    kind: str
    link: Any = None
    emulator: Any = None
    conn: Connection | None = None
    emulator_priority: str = ""
    emulator_pid: int | None = None
    socat_pid: int | None = None
    wanted: dict[int, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    executed_late: int = 0
    double_outcomes: int = 0
    submit_gaps_ms: list[float] = field(default_factory=list)

    def on_events(self) -> None:
        for ev in self.link.poll_events():
            if ev.status == "accepted":
                continue
            if ev.command_id in self.finished:
                self.double_outcomes += 1
                continue
            self.finished.add(ev.command_id)
            self.outcomes[ev.status] = self.outcomes.get(ev.status, 0) + 1
            want = self.wanted.get(ev.command_id)
            if ev.status == "executed" and want is not None and ev.open_count is not None:
                self.executed_late += int(ev.open_count - want > LATE_TOLERANCE_COUNTS)


def start_line(kind: str, in_process: bool, ctx: Any, peer_nice: int | None = None, rig: str = "direct") -> LineRun:
    from sorter.actuate.link_process import ProcessLink
    from sorter.actuate.links import build_link, link_where
    from sorter.config import load_config

    run = LineRun(kind)
    here, there = ctx.Pipe()
    run.emulator = ctx.Process(target=emulator_main, args=(kind, there, peer_nice, rig), name=f"soak-{kind}-controller",
                               daemon=True)
    run.emulator.start()
    there.close()
    run.conn = here
    if not here.poll(60.0):
        raise SystemExit(f"the {kind} emulator did not start within 60 s")
    _, address, run.emulator_priority, run.emulator_pid, run.socat_pid = here.recv()
    where_key = f"actuator.serial.url={address}" if kind == "serial" else f"actuator.modbus.port={address}"
    cfg = load_config(None, [f"actuator.type={kind}", where_key])
    if in_process:
        run.link, _where, _fix = build_link(cfg.actuator, kind, arm=True)
    else:
        where, _ = link_where(cfg.actuator, kind, emulated=True)
        run.link = ProcessLink(cfg.actuator, kind, where, rt_priority=cfg.runtime.link_priority)
    run.link.start()
    if not run.link.wait_ready(60.0):
        raise SystemExit(f"the {kind} link did not get ready within 60 s")
    return run


def drive(runs: list[LineRun], rate_hz: float, stop: threading.Event) -> None:
    """Submit one command per line every 1/rate_hz s, about LEAD_S of belt ahead; collect outcomes."""
    from firmware_bridge.messages import Fire

    next_id = 1
    period = 1.0 / rate_hz
    t_next = time.monotonic()
    t_last = t_next
    while not stop.is_set():
        now = time.monotonic()
        if now < t_next:
            time.sleep(min(t_next - now, 0.01))
            continue
        t_next += period
        for run in runs:
            run.submit_gaps_ms.append((now - t_last) * 1e3)
            count = run.link.sync.count_at(time.monotonic_ns())
            if count is not None:
                want = int(count + LEAD_S * SPEED_COUNTS_PER_S)
                run.wanted[next_id] = want
                run.link.submit(Fire(next_id, next_id % 8, next_id % 8, want, want + PULSE_COUNTS))
                next_id += 1
            run.on_events()
        t_last = now


def busy_interpreter(stop: threading.Event) -> None:
    """Pure-Python work in this process: the line's vision work holding the interpreter."""
    x = 0
    while not stop.is_set():
        for i in range(20_000):
            x = (x + i * i) % 1_000_003


def serve_metrics(runs: list[LineRun]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = "".join(
                f'link_{k}{{line="{r.kind}"}} {v}\n' for r in runs for k, v in r.link.stats().items()
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="soak-metrics", daemon=True).start()
    return server


def scrape(url: str, stop: threading.Event, counts: dict[str, int]) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
            counts["ok"] = counts.get("ok", 0) + 1
        except OSError:
            counts["failed"] = counts.get("failed", 0) + 1


def finish(run: LineRun, cpu: CpuSampler, t0_ns: int) -> dict[str, Any]:
    """Drain, close the link, collect the controller's figures: one row of the table (heartbeat gaps over
    ``GAP_MS`` with what the CPUs' counters did meanwhile)."""
    deadline = time.monotonic() + 3.0 + LEAD_S
    run.link.wait_idle(2.0)
    while time.monotonic() < deadline and len(run.finished) < len(run.wanted):
        run.link.fetch_reports()
        run.on_events()
        time.sleep(0.05)
    stats = run.link.stats()
    link_pid = run.link.child_pid() if hasattr(run.link, "child_pid") else os.getpid()
    link_sched = describe_priority(link_pid)  # the link process (or this one, for links in threads)
    peer_sched = f"emulator {describe_priority(run.emulator_pid)}"
    if run.socat_pid is not None:
        peer_sched += f", socat {describe_priority(run.socat_pid)}"
    run.link.close()
    run.on_events()
    assert run.conn is not None
    run.conn.send("stop")
    _, hb_ns, counters = run.conn.recv() if run.conn.poll(30.0) else ("", [], {})
    run.emulator.join(10.0)
    g = np.diff(np.asarray(hb_ns, dtype=np.int64)) / 1e6
    long_gaps = attribute_gaps(hb_ns, cpu, GAP_MS, jiffy_ms(), t0_ns)
    deaths = int(stats.get("process_deaths", 0))
    trips = int(counters.get("watchdog_trips", -1))
    sent = len(run.wanted)
    return {
        "line": run.kind,
        "sent": sent,
        "outcomes": dict(sorted(run.outcomes.items())),
        "no_outcome": sent - len(run.finished),
        "double_outcomes": run.double_outcomes,
        "executed_late": run.executed_late,
        "watchdog_trips": trips,
        "false_watchdog_trips": trips if deaths == 0 else None,  # with a dead link process a trip is a real one
        "link_process_deaths": deaths,
        "heartbeats": len(hb_ns),
        "heartbeat_gap_ms": {k: round(float(np.percentile(g, q)), 2) for k, q in (("p50", 50), ("p99", 99), ("max", 100))}
        if g.size else {},
        f"gaps_over_{GAP_MS:g}ms": len(long_gaps),
        "gaps_with_steal": sum(x["steal_rose"] for x in long_gaps),
        "long_gaps": long_gaps,
        "driver_gap_ms_max": round(max(run.submit_gaps_ms[1:], default=0.0), 1),
        "link_priority": getattr(run.link, "priority", "") or "thread of the soak process",
        "controller_priority": run.emulator_priority,
        "link_sched": link_sched,
        "peer_sched": peer_sched,
        "link_stats": stats,
        "controller_counters": counters,
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'line':7s} {'sent':>6s} {'executed':>8s} {'late':>5s} {'rej':>4s} {'lost':>5s} {'other':>5s} {'none':>4s} "
            f"{'exec late':>9s} {'wd trips':>8s} {'false':>5s} {'hb':>6s} {'gap p50':>7s} {'p99':>6s} {'max':>7s} "
            f"{'deaths':>6s} {f'>{GAP_MS:g}ms':>6s} {'steal':>5s}")
    out = [head, "-" * len(head)]
    for r in rows:
        o = dict(r["outcomes"])
        known = sum(o.get(k, 0) for k in ("executed", "late", "rejected", "lost"))
        g = r["heartbeat_gap_ms"] or {"p50": 0.0, "p99": 0.0, "max": 0.0}
        out.append(
            f"{r['line']:7s} {r['sent']:6d} {o.get('executed', 0):8d} {o.get('late', 0):5d} {o.get('rejected', 0):4d} "
            f"{o.get('lost', 0):5d} {sum(o.values()) - known:5d} {r['no_outcome']:4d} {r['executed_late']:9d} "
            f"{r['watchdog_trips']:8d} {r['false_watchdog_trips']!s:>5s} {r['heartbeats']:6d} {g['p50']:7.2f} "
            f"{g['p99']:6.2f} {g['max']:7.2f} {r['link_process_deaths']:6d} {r[f'gaps_over_{GAP_MS:g}ms']:6d} "
            f"{r['gaps_with_steal']:5d}"
        )
    for r in rows:
        out.append(f"{r['line']}: link asked for {r['link_priority']}; controller emulator asked for "
                   f"{r['controller_priority']}; driver's longest gap {r['driver_gap_ms_max']} ms (the line's own "
                   "process under load)")
        out.append(f"{r['line']}: ran at (read from the kernel): link {r['link_sched']}; peer {r['peer_sched']}")
        if "heartbeat_gap_ms_max" in r["link_stats"]:  # the serial host's own view: when it wrote each heartbeat
            out.append(f"{r['line']}: host wrote heartbeats at most {r['link_stats']['heartbeat_gap_ms_max']} ms apart "
                       f"({r['link_stats']['heartbeats_late']} over two periods); the controller saw them at most "
                       f"{(r['heartbeat_gap_ms'] or {'max': 0.0})['max']:.0f} ms apart")
        if port := r["controller_counters"].get("port"):
            out.append(f"{r['line']}: controller's port: {port['write_stalls']} write stalls, {port['write_timeouts']} "
                       f"write timeouts, {port['tx_dropped_bytes']} bytes dropped, backlog max "
                       f"{port['tx_backlog_max_bytes']} bytes")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--hogs", type=int, default=0, help="CPU hog processes (python -c 'while True: pass'); 2 per the target")
    ap.add_argument("--hog-nice", type=int, default=0, help="niceness of the hogs (0: they compete with everything)")
    ap.add_argument("--peer-nice", type=int, default=None, choices=range(-20, 20), metavar="N",
                    help="niceness -20..19 of the controller's side of the rig (every thread of the emulator process, "
                         "and socat), e.g. -10 for the priority a kernel USB-serial driver has over user processes; "
                         "default: left as started (the emulator asks for SCHED_FIFO, socat inherits it)")
    ap.add_argument("--lines", default="serial,modbus")
    ap.add_argument("--serial-rig", choices=("direct", "socat"), default="direct",
                    help="direct: the emulator owns a pseudo-terminal and the link opens its /dev/pts/N (no relay, as "
                         "with a USB-serial adapter); socat: the emulator behind a socat pseudo-terminal pair")
    ap.add_argument("--in-process", action="store_true", help="links as threads of this process (runtime.link_process: false)")
    ap.add_argument("--rate-hz", type=float, default=20.0, help="commands per second per line")
    ap.add_argument("--no-busy", action="store_true", help="no pure-Python work in this process")
    ap.add_argument("--scrape", default=None, help="URL scraped every second (default: this script's own /metrics)")
    ap.add_argument("--json", default=None, help="write the rows here too")
    args = ap.parse_args(argv)
    kinds = [k.strip() for k in args.lines.split(",") if k.strip()]
    if bad := [k for k in kinds if k not in ("serial", "modbus")]:
        ap.error(f"--lines: {bad} are not lines; use serial, modbus or both")

    load_before = Path("/proc/loadavg").read_text().strip()
    t0_ns = time.monotonic_ns()
    cpu = CpuSampler(CPU_SAMPLE_S).start()
    ctx = multiprocessing.get_context("spawn")
    runs = [start_line(k, args.in_process, ctx, args.peer_nice, args.serial_rig) for k in kinds]
    pids = [(f"{run.kind} {who}", pid) for run in runs for who, pid in (
        ("link", run.link.child_pid() if hasattr(run.link, "child_pid") else os.getpid()),
        ("controller", run.emulator_pid), ("socat", run.socat_pid))]
    waits = WaitSampler({who: pid for who, pid in pids if pid}).start()  # where their threads wait in the kernel
    stop = threading.Event()
    hog = [sys.executable, "-c", f"import os; os.nice({args.hog_nice}); exec('while True: pass')"]
    hogs = [subprocess.Popen(hog) for _ in range(args.hogs)]
    server = serve_metrics(runs)
    url = args.scrape or f"http://127.0.0.1:{server.server_address[1]}/metrics"
    scraped: dict[str, int] = {}
    threads = [threading.Thread(target=drive, args=(runs, args.rate_hz, stop), name="soak-drive"),
               threading.Thread(target=scrape, args=(url, stop, scraped), name="soak-scrape")]
    if not args.no_busy:
        threads.append(threading.Thread(target=busy_interpreter, args=(stop,), name="soak-busy"))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        stop.wait(args.minutes * 60.0)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for t in threads:
            t.join(10.0)
        for h in hogs:
            h.kill()
            h.wait()
        server.shutdown()
    minutes = (time.monotonic() - t0) / 60.0
    waits.stop()
    rows = [finish(r, cpu, t0_ns) for r in runs]
    cpu.stop()
    cpu_summary = summarise(cpu, jiffy_ms())
    mode = "threads of the soak process" if args.in_process else "own processes (runtime.link_process)"
    peer = "peer at its own priority" if args.peer_nice is None else f"peer at nice {args.peer_nice}"
    print(f"soak_link: {minutes:.1f} min, serial rig {args.serial_rig}, links in {mode}, {args.hogs} CPU hogs "
          f"(nice {args.hog_nice}), {peer}, "
          f"{os.cpu_count()} CPUs, "
          f"{args.rate_hz:g} commands/s per line, {'no ' if args.no_busy else ''}busy interpreter, "
          f"{url} scraped {scraped.get('ok', 0)} times ({scraped.get('failed', 0)} failed)")
    print(table(rows))
    load_after = Path("/proc/loadavg").read_text().strip()
    print(f"loadavg before: {load_before}; after: {load_after}")
    print("\n".join([cpu_lines(cpu_summary), *wait_lines(waits.summary())]))
    for r in rows:
        print("\n".join(gap_lines(r["line"], r["long_gaps"])))
    if args.json:
        Path(args.json).write_text(json.dumps({"minutes": minutes, "hogs": args.hogs, "in_process": args.in_process,
                                               "serial_rig": args.serial_rig, "peer_nice": args.peer_nice,
                                               "loadavg": [load_before, load_after], "cpu": cpu_summary,
                                               "kernel_waits": waits.summary(), "rows": rows},
                                              indent=2) + "\n", encoding="utf-8")
    false_trips = sum(r["false_watchdog_trips"] or 0 for r in rows)
    print(f"false watchdog trips: {false_trips} (target 0)")
    return 0 if false_trips == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
