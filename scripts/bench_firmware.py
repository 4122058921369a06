#!/usr/bin/env python3
"""Timing of the reference firmware at the pins of its emulated board (simavr, ATmega2560 at 16 MHz); prints tables.

Everything is measured on emulated time, so the figures are exact and do not depend on this machine's load:

* opening precision: FIRE commands at 2.5 m/s, 10 counts/mm (25000 counts/s), opening 5-45 ms ahead, one every
  4 ms: opening and closing error in counts and mm at the pin, time from the compare match to the pin edge;
* the same with simavr's own external-clock compare (``--stock-compare``), which sets its flag one counter clock
  later than the ATmega2560 datasheet says (the harness models the datasheet by default);
* the protocol watchdog: last heartbeat to valve closed, per trial;
* the command-to-position budget: how far ahead of its open position a FIRE must start arriving at 1 Mbaud;
* the command rate the firmware sustains (FIRE, ACK and FIRED for each).

Usage::

    python scripts/bench_firmware.py                  # 10000 commands, 100 watchdog trials
    python scripts/bench_firmware.py --n 2000 --trials 20
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "firmware"))

import fwboard as fb  # noqa: E402
import fwscenarios as sc  # noqa: E402
from fwboard import run_script  # noqa: E402

SPEED = 25_000.0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def precision_table(b: fb.Build, work: Path, epoch: int, n: int, stock: bool) -> None:
    s, fires, end = sc.precision_script(epoch, n)
    t0 = time.monotonic()
    extra = ["--stock-compare"] if stock else []
    events = run_script(b, work, s, sc.profile(SPEED), duration_s=end / 1e6, extra=extra)
    wall = time.monotonic() - t0
    r = sc.analyse_fires(events, fires)
    opened = sum(r.open_errors.values())
    label = "simavr's own compare" if stock else "datasheet compare"
    print(f"\n## Opening precision ({label}): {n} FIREs, {SPEED:.0f} counts/s, one every 4 ms "
          f"({end / 1e6:.1f} s emulated in {wall:.1f} s)")
    print(f"accepted {r.accepted}/{r.sent}, FIRED {r.fired}, pin edges not explained by a command "
          f"{r.unexplained_edges}, FIRED differing from the pins {r.report_mismatch}")
    print("| error (counts) | error (mm) | openings | closings |")
    print("|---:|---:|---:|---:|")
    for k in sorted(set(r.open_errors) | set(r.close_errors)):
        print(f"| {k:+d} | {k / sc.COUNTS_PER_MM:+.1f} | {r.open_errors.get(k, 0)} | {r.close_errors.get(k, 0)} |")
    print(f"within 1 count: {100 * r.within(1):.3f} % of {opened} openings")
    lat = r.latencies_us
    if lat:
        print(f"compare match -> pin edge (opening edges, us): mean {statistics.mean(lat):.2f}, "
              f"p99 {pct(lat, 0.99):.2f}, p99.9 {pct(lat, 0.999):.2f}, max {max(lat):.2f}; over 10 us: "
              f"{sum(1 for x in lat if x > 10)}; switched without a match: {r.switched_without_match}")
    stack = next((e for e in events if e.get("ev") == "stack"), None)
    if stack:
        print(f"deepest stack: {stack['peak_bytes']} bytes (SP down to 0x{stack['sp_min']:04x})")
    irq = next((e for e in events if e.get("ev") == "irq_off"), None)
    lat_ev = next((e for e in events if e.get("ev") == "latency"), None)
    if irq and lat_ev:
        print(f"longest stretch with interrupts off: {irq['worst_cycles'] / 16:.1f} us; worst USART0 receive "
              f"interrupt latency {lat_ev['USART0_RX']['worst_latency_cycles'] / 16:.1f} us (a byte every 10 us, "
              f"the USART holds 2)")


def watchdog_table(b: fb.Build, work: Path, epoch: int, trials: int) -> None:
    got = sc.run_watchdog(b, work, epoch, trials)
    d = [t.delay_ms for t in got]
    print(f"\n## Watchdog: {len(got)} trials, last HEARTBEAT read by the firmware -> valve pin low")
    print(f"min {min(d):.3f} ms, mean {statistics.mean(d):.3f} ms, max {max(d):.3f} ms; "
          f"all within 100 ms +1 ms: {all(100 < x <= 101 for x in d)}; FAULT sent in every trial: "
          f"{all(t.fault_sent for t in got)}")


def lead_table(b: fb.Build, work: Path, epoch: int, repeats: int) -> None:
    leads = [lead for lead in range(4, 50) for _ in range(repeats)]
    probes = sc.run_lead(b, work, epoch, leads)
    budget = sc.lead_budget(probes)
    acc = [p.processing_us for p in probes if p.accepted and p.processing_us is not None]
    print(f"\n## Command-to-position budget at 1 Mbaud ({repeats} FIREs per lead, each starting on an encoder edge)")
    print("| lead (counts) | lead (us) | accepted | opened exactly |")
    print("|---:|---:|---:|---:|")
    for lead in sorted(set(leads)):
        ps = [p for p in probes if p.lead_counts == lead]
        if lead % 2 == 0 or lead == budget:
            print(f"| {lead} | {lead / SPEED * 1e6:.0f} | {sum(p.accepted for p in ps)}/{len(ps)} | "
                  f"{sum(p.open_error == 0 for p in ps)} |")
    if budget is not None:
        print(f"budget: every FIRE whose first byte starts {budget} counts ({budget / SPEED * 1e3:.2f} ms) or more "
              f"before its open position is accepted and opens on its count")
    if acc:
        print(f"last byte of a FIRE read -> first byte of its ACK: {min(acc):.0f}-{max(acc):.0f} us; a FIRE frame is "
              f"33 bytes: 330 us at 1 Mbaud 8N1 (simavr's USART counts 11 bits: 363 us)")


def capacity_table(b: fb.Build, work: Path, epoch: int, n: int) -> None:
    print(f"\n## Sustained command rate ({n} FIREs per row, each answered ACK and reported FIRED)")
    print("| commands/s | accepted | late | opened exactly |")
    print("|---:|---:|---:|---:|")
    for spacing_us in (4000, 2000, 1500, 1000):
        s, fires, end = sc.precision_script(epoch, n, spacing_us=spacing_us)
        events = run_script(b, work, s, sc.profile(SPEED), duration_s=end / 1e6)
        r = sc.analyse_fires(events, fires)
        late = sum(1 for _e, f in fb.frames(events, "tx")
                   if isinstance(f, fb.Frame) and f.name == "NAK" and f["reason"] == fb.NAK_LATE)
        print(f"| {1e6 / spacing_us:.0f} | {r.accepted}/{r.sent} | {late} | {r.open_errors.get(0, 0)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="FIRE commands for the precision table")
    ap.add_argument("--trials", type=int, default=100, help="watchdog trials")
    ap.add_argument("--repeats", type=int, default=10, help="FIREs per lead in the budget table")
    args = ap.parse_args()
    missing = fb.tools_missing()
    if missing:
        print(f"cannot build the firmware: {missing}", file=sys.stderr)
        return 2
    b = fb.build()
    with tempfile.TemporaryDirectory(prefix="bench-firmware-") as tmp:
        work = Path(tmp)
        boot_id, epoch = fb.probe_identity(b, work / "probe")
        print(f"# Firmware on the emulated board: {b.elf.relative_to(ROOT)}, boot id 0x{boot_id:08x}, epoch {epoch}")
        size = subprocess.run(["avr-size", "-C", "--mcu=atmega2560", str(b.elf)], capture_output=True, text=True).stdout
        flash = re.search(r"Program:\s+(\d+) bytes", size)
        ram = re.search(r"Data:\s+(\d+) bytes", size)
        if flash and ram:
            print(f"flash {flash.group(1)} of 262144 bytes, static RAM {ram.group(1)} of 8192 bytes")
        precision_table(b, work, epoch, args.n, stock=False)
        precision_table(b, work, epoch, min(args.n, 1000), stock=True)
        watchdog_table(b, work, epoch, args.trials)
        lead_table(b, work, epoch, args.repeats)
        capacity_table(b, work, epoch, 500)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
