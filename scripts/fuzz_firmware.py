#!/usr/bin/env python3
"""Fuzz the reference firmware through the UART of its emulated board and print the result.

Random bytes, valid-CRC garbage, truncated and oversize frames, unknown types, wrong lengths and refused commands,
mixed with a good FIRE every 40 items and a heartbeat every 20 ms; paced so that the link is never saturated,
so that the firmware's bad-frame counter can be checked exactly. Pass: no reset, no crash, no pulse but the good
ones (each on its count), bad_frames equal to what the page's receiver rules give.

Usage::

    python scripts/fuzz_firmware.py                     # 100,000 frames
    python scripts/fuzz_firmware.py --frames 5000 --seed 7
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "firmware"))

import fwboard as fb  # noqa: E402
import fwscenarios as sc  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    missing = fb.tools_missing()
    if missing:
        print(f"cannot build the firmware: {missing}", file=sys.stderr)
        return 2
    b = fb.build()
    with tempfile.TemporaryDirectory(prefix="fuzz-firmware-") as tmp:
        work = Path(tmp)
        boot_id, epoch = fb.probe_identity(b, work / "probe")
        t0 = time.monotonic()
        plan = sc.fuzz_plan(epoch, args.frames, seed=args.seed)
        events = fb.run_script(b, work, plan.script, sc.profile(25_000), duration_s=plan.end_us / 1e6)
        r = sc.analyse_fuzz(events, plan)
        wall = time.monotonic() - t0
    ok = (not r.crashed and r.resets == 0 and r.boot_id == boot_id and r.bad_frames == plan.expected["bad"]
          and r.fires.accepted == r.fires.fired == len(plan.fires) and r.fires.unexplained_edges == 0
          and r.fires.open_errors.get(0, 0) == len(plan.fires))
    print(f"# Fuzzing the firmware through its UART: {args.frames} frames, seed {args.seed}")
    print("| figure | value |")
    print("|---|---:|")
    print(f"| emulated time | {plan.end_us / 1e6:.1f} s |")
    print(f"| wall time (this machine) | {wall:.1f} s |")
    print(f"| bad frames expected / counted by the firmware | {plan.expected['bad']} / {r.bad_frames} |")
    print(f"| good frames in the stream | {sum(v for k, v in plan.expected.items() if k != 'bad')} |")
    print(f"| good FIREs accepted / fired on their count | {r.fires.accepted} / {r.fires.open_errors.get(0, 0)} "
          f"of {len(plan.fires)} |")
    print(f"| pin edges not from a good FIRE | {r.fires.unexplained_edges} |")
    print(f"| resets / crashes | {r.resets} / {int(r.crashed)} |")
    print(f"| same boot at the end | {r.boot_id == boot_id} |")
    print(f"| frames sent by the firmware | {dict(r.tx_frames)} |")
    print(f"\n{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
