"""Command line of the PLC emulator: ``python -m firmware_bridge.emulators.plc`` (a PLC with the built-in encoder)."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence

from firmware_bridge import registers as rmap
from firmware_bridge.controller import ControllerLimits
from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.emulators.plc import PlcEmulator

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: a PLC emulator with the built-in encoder until Ctrl-C."""
    ap = argparse.ArgumentParser(description="Emulated PLC (Modbus register map of firmware_bridge/PROTOCOL.md).")
    ap.add_argument("--transport", choices=("tcp", "rtu"), default="tcp")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5020)
    ap.add_argument("--serial", default=None, help="serial port for --transport rtu")
    ap.add_argument("--baudrate", type=int, default=115200)
    ap.add_argument("--valves", type=int, default=64)
    ap.add_argument("--speed-counts-per-s", type=float, default=25000.0)
    ap.add_argument("--watchdog-ms", type=float, default=100.0)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    device = FreeRunningDevice(args.valves, args.speed_counts_per_s)
    limits = ControllerLimits(queue_capacity=rmap.SLOT_COUNT, watchdog_ms=args.watchdog_ms)
    emu = PlcEmulator(device, limits, args.transport, args.host, args.port, args.serial, args.baudrate).start()
    where = f"{args.host}:{emu.port}" if args.transport == "tcp" else args.serial
    log.info(
        "PLC emulator (Modbus %s) on %s: %d valves, %.0f counts/s",
        args.transport.upper(),
        where,
        args.valves,
        args.speed_counts_per_s,
    )
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0
