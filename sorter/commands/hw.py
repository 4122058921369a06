"""``sorter hw``: talk to the valve controller or PLC directly (commissioning and diagnosis).

* ``sorter hw ping``: round trips, encoder count and speed, clock offset. Read only.
* ``sorter hw status``: the controller's state and counters. Read only.
* ``sorter hw fire-test``: fire each valve in turn (after a confirmation prompt, or
  ``--yes``); ``--dry-run`` prints the plan and sends nothing.

The link comes from the config (``actuator.type`` serial or modbus and its
section), opened by ``sorter.actuate.links`` as the running line opens it.
``--emulate`` starts a device emulator with its own encoder instead,
to try the commands without hardware. ``ping`` and ``status`` never arm the
controller nor feed its watchdog, so they are safe next to a running sorter
on Modbus (a serial port can only be opened by one program at a time).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from typing import TYPE_CHECKING

from sorter.commands.common import add_config_arguments, load_or_report

if TYPE_CHECKING:
    from sorter.actuate.links import OpenedLink
    from sorter.config import Config

HELP = "talk to the valve controller or PLC: ping, status, fire-test (commissioning)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="hw_command", metavar="ACTION", required=True)
    for name, text in (
        ("ping", "round trips, encoder count and belt speed, clock offset (read only)"),
        ("status", "controller state and counters (read only)"),
        ("fire-test", "fire each valve in turn to check wiring and air (asks for confirmation)"),
    ):
        q = sub.add_parser(name, help=text, description=text)
        add_config_arguments(q)
        q.add_argument(
            "--emulate",
            action="store_true",
            help="start a device emulator (own encoder at the nominal belt speed) instead of hardware",
        )
        q.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds to wait for the device (default 3)")
        if name == "ping":
            q.add_argument("--count", type=int, default=10, help="number of probes (default 10)")
        if name == "fire-test":
            q.add_argument("--valves", default=None, metavar="LIST", help="valves to fire, e.g. 0-63 or 3,5,7 (default: all)")
            q.add_argument("--pulse-ms", type=float, default=20.0, help="pulse length at the current belt speed (default 20)")
            q.add_argument("--gap-ms", type=float, default=150.0, help="time between two valves (default 150)")
            q.add_argument("--lead-ms", type=float, default=200.0, help="first valve fires this long after sending (default 200)")
            q.add_argument("--dry-run", action="store_true", help="print what would be fired, send nothing")
            q.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def parse_valves(text: str | None, count: int) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``; None -> every valve.

    Raises:
        ValueError: malformed list or a valve outside ``0..count-1``.
    """
    if text is None:
        return list(range(count))
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi) if hi else int(lo)
        if a > b:
            raise ValueError(f"valve range {part!r} runs backwards; write it as {b}-{a}")
        out.extend(range(a, b + 1))
    bad = [v for v in out if not 0 <= v < count]
    if bad:
        raise ValueError(f"valve(s) {bad} outside 0..{count - 1} (airjet.valves.count = {count})")
    if not out:
        raise ValueError("no valves given; e.g. --valves 0-63")
    return out


def open_target(cfg: Config, arm: bool, emulate: bool) -> OpenedLink:
    """Open the configured link (``arm`` False: monitor only); ``emulate`` runs an emulator with its own encoder
    (at the nominal belt speed) instead of talking to hardware."""
    from firmware_bridge.device import FreeRunningDevice
    from sorter.actuate.links import link_counts_per_mm, link_max_counts_per_s, open_link
    from sorter.errors import ConfigError

    if cfg.actuator.type not in ("serial", "modbus"):
        raise ConfigError(
            f"actuator.type = {cfg.actuator.type!r}: 'sorter hw' talks to a controller; set actuator.type to serial or modbus"
        )
    rate = link_max_counts_per_s(cfg)
    if not emulate:
        return open_link(cfg.actuator, arm=arm, max_counts_per_s=rate)
    device = FreeRunningDevice(cfg.airjet.valves.count, cfg.belt.nominal_speed_mm_s * link_counts_per_mm(cfg))
    return open_link(cfg.actuator, arm=arm, emulate=device, max_counts_per_s=rate)


def _connect(cfg: Config, args: argparse.Namespace, arm: bool) -> OpenedLink | None:
    from sorter.errors import SorterError

    try:
        t = open_target(cfg, arm, args.emulate)
    except (SorterError, OSError, RuntimeError) as e:
        print(f"cannot open the link: {e}", file=sys.stderr)
        return None
    if not t.link.wait_ready(args.timeout):
        print(
            f"no answer from the {t.where} within {args.timeout:g} s; check the cable/network and actuator settings",
            file=sys.stderr,
        )
        t.close()
        return None
    return t


def _ping(cfg: Config, args: argparse.Namespace) -> int:
    from sorter.actuate.links import link_counts_per_mm

    t = _connect(cfg, args, arm=False)
    if t is None:
        return 2
    cpm = link_counts_per_mm(cfg)
    try:
        print(f"pinging the {t.where}")
        rtts: list[float] = []
        for k in range(args.count):
            if not t.link.ping(args.timeout):
                print(f"  probe {k + 1}: no answer")
                continue
            s = t.link.sync.latest()
            assert s is not None
            rtts.append(s.rtt_ns / 1e6)
            mm = s.encoder_count / cpm
            print(f"  probe {k + 1}: round trip {s.rtt_ns / 1e6:7.3f} ms, encoder {s.encoder_count} ({mm:.1f} mm)")
            time.sleep(0.05)
        if not rtts:
            return 1
        speed = t.link.sync.speed_counts_per_s()
        off = t.link.sync.clock_offset_us()
        med = statistics.median(rtts)
        print(f"round trip: min {min(rtts):.3f} / median {med:.3f} / max {max(rtts):.3f} ms ({len(rtts)}/{args.count} answered)")
        if speed is not None:
            print(f"belt: {speed:.0f} counts/s = {speed / cpm:.0f} mm/s")
        if off is not None:
            print(f"device clock minus host clock: {off / 1e6:.6f} s (from the fastest probe)")
        return 0 if len(rtts) == args.count else 1
    finally:
        t.close()


def _status(cfg: Config, args: argparse.Namespace) -> int:
    from firmware_bridge.messages import FaultCode, StatusFlags
    from sorter.actuate.links import link_counts_per_mm

    t = _connect(cfg, args, arm=False)
    if t is None:
        return 2
    try:
        st = t.link.request_status(args.timeout)
        if st is None:
            print(f"the {t.where} did not send its status", file=sys.stderr)
            return 1
        flags = [f.name or "" for f in StatusFlags if st.flags & f]
        fault = FaultCode(st.fault_code).name if st.fault_code in FaultCode._value2member_map_ else str(st.fault_code)
        cpm = link_counts_per_mm(cfg)
        print(f"{t.where}: protocol v{st.version}")
        print(f"  state:    {', '.join(flags) or 'disarmed'}; fault {fault}; session {st.session_id:08x}")
        print(f"  valves:   {st.valve_count}; queue {st.queue_len}/{st.queue_capacity}")
        print(f"  encoder:  {st.encoder_count} counts ({st.encoder_count / cpm:.1f} mm); epoch {st.epoch}, boot {st.boot_id:08x}")
        print(f"  counters: executed {st.executed}, refused late {st.late}, rejected {st.rejected},")
        print(f"            bad frames {st.bad_frames}, watchdog trips {st.watchdog_trips}")
        return 0 if st.fault_code == 0 else 1
    finally:
        t.close()


def _measure_speed(t: OpenedLink, timeout_s: float) -> float | None:
    """Belt speed in counts/s from probes spread over ~0.3 s (None if the encoder does not move)."""
    deadline = time.monotonic() + max(timeout_s, 0.5)
    while time.monotonic() < deadline:
        t.link.ping(timeout_s)
        speed = t.link.sync.speed_counts_per_s()
        if speed is not None:
            return speed
        time.sleep(0.03)
    return None


def _fire_test(cfg: Config, args: argparse.Namespace) -> int:
    from firmware_bridge.link import LinkEvent
    from firmware_bridge.messages import Fire

    try:
        valves = parse_valves(args.valves, cfg.airjet.valves.count)
    except ValueError as e:
        print(f"--valves: {e}", file=sys.stderr)
        return 2
    if args.pulse_ms <= 0 or args.gap_ms <= 0 or args.lead_ms <= 0:
        print("--pulse-ms, --gap-ms and --lead-ms must be positive", file=sys.stderr)
        return 2
    total_s = (args.lead_ms + args.gap_ms * len(valves)) / 1000.0
    which = args.valves or f"0-{cfg.airjet.valves.count - 1}"
    plan = f"{len(valves)} valve(s) {which}, {args.pulse_ms:g} ms each, one every {args.gap_ms:g} ms (about {total_s:.1f} s)"
    if not args.dry_run and not args.yes:
        if not sys.stdin.isatty():
            print("fire-test blows air; confirm with --yes when not running interactively", file=sys.stderr)
            return 2
        answer = input(f"About to fire {plan}. Air will blow; keep hands off the valve bank. Type 'yes' to continue: ")
        if answer.strip().lower() != "yes":
            print("cancelled; nothing was fired")
            return 1
    t = _connect(cfg, args, arm=not args.dry_run)
    if t is None:
        return 2
    try:
        speed = _measure_speed(t, args.timeout)
        if speed is None or speed < 1.0:
            print(
                "the belt is not moving (encoder speed 0): commands are position-stamped and would never fire; "
                "start the belt and try again",
                file=sys.stderr,
            )
            return 2
        now_est = t.link.sync.count_at(time.monotonic_ns())
        assert now_est is not None
        per_ms = speed / 1000.0
        pulse = max(1, round(args.pulse_ms * per_ms))
        cmds = []
        base_id = random.getrandbits(28) + 1  # ids unlikely to collide with a previous test run
        for i, v in enumerate(valves):
            open_count = round(now_est + (args.lead_ms + i * args.gap_ms) * per_ms)
            cmds.append(Fire(base_id + i, v, v, open_count, open_count + pulse))
        print(f"{t.where}: belt {speed:.0f} counts/s; {plan}")
        if args.dry_run:
            for c in cmds:
                print(f"  would fire valve {c.valve_first:3d}: open at count {c.open_count}, close at {c.close_count}")
            print("dry run: nothing was sent")
            return 0
        for c in cmds:
            t.link.submit(c)
        finals: dict[int, LinkEvent] = {}
        deadline = time.monotonic() + total_s + args.timeout
        while len(finals) < len(cmds) and time.monotonic() < deadline:
            for ev in t.link.poll_events():
                if ev.status != "accepted":
                    finals[ev.command_id] = ev
            time.sleep(0.02)
        ok = 0
        for c in cmds:
            fin = finals.get(c.command_id)
            if fin is None:
                print(f"  valve {c.valve_first:3d}: no answer")
            elif fin.status == "executed":
                ok += 1
                fired = f"fired at count {fin.open_count} (commanded {c.open_count}), closed at {fin.close_count}"
                print(f"  valve {c.valve_first:3d}: {fired}")
            else:
                print(f"  valve {c.valve_first:3d}: {fin.status} {fin.detail}")
        print(f"{ok}/{len(cmds)} valves fired")
        return 0 if ok == len(cmds) else 1
    finally:
        t.close()


def main(args: argparse.Namespace) -> int:
    cfg = load_or_report(args)
    if cfg is None:
        return 2
    actions = {"ping": _ping, "status": _status, "fire-test": _fire_test}
    return actions[args.hw_command](cfg, args)
