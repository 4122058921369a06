"""Emulated valve controller on a serial port, speaking the real protocol.

``ValveControllerProtocol`` is the firmware's message handling, sans-IO: bytes
and wall time in, bytes out. ``ValveControllerEmulator`` runs it on a serial
port (any pyserial URL, e.g. one end of a socat pseudo-terminal pair, or a
pseudo-terminal it owns itself: ``ports.PtyMasterPort``) in one thread,
ticking the device model and the watchdog every ``tick_s``.

Run standalone (built-in encoder at a fixed speed) on a port, or on a
pseudo-terminal of its own whose path it prints for the host to open::

    python -m firmware_bridge.emulators.valve_controller --port /dev/pts/7 --valves 64 --speed-counts-per-s 25000
    python -m firmware_bridge.emulators.valve_controller --pty
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import serial

from firmware_bridge.codec import DecodedFrame, FrameDecoder, FrameError, FrameErrorKind, encode_frame
from firmware_bridge.controller import ControllerCore, ControllerLimits, Outcome
from firmware_bridge.device import DeviceModel, Execution, FreeRunningDevice
from firmware_bridge.emulators.ports import ControllerPort, PortCounters, PtyMasterPort, SerialUrlPort
from firmware_bridge.messages import (
    EPOCH_UNSET,
    SEQ_NONE,
    Ack,
    AckResult,
    Arm,
    Cancel,
    Disarm,
    Epoch,
    Fault,
    Fire,
    Fired,
    Heartbeat,
    Message,
    Nak,
    NakReason,
    Pick,
    Picked,
    Ping,
    Pong,
    StatusRequest,
)
from firmware_bridge.ratelimit import BurstLog

log = logging.getLogger(__name__)


def report_for(e: Execution) -> Fired | Picked:
    """The FIRED/PICKED message of an execution."""
    if e.kind == "pick":
        return Picked(e.command_id, e.open_count)
    return Fired(e.command_id, e.open_count, e.close_count)


class ValveControllerProtocol:
    """Firmware message handling of the valve controller (sans-IO)."""

    def __init__(self, core: ControllerCore) -> None:
        self.core = core
        self.decoder = FrameDecoder()
        self._seq = 0
        self._burst = BurstLog(log, "controller received damaged frames")

    def _frame(self, m: Message) -> bytes:
        self._seq = (self._seq + 1) % 0xFFFF
        return encode_frame(m, self._seq)

    def receive(self, data: bytes, wall_ns: int) -> bytes:
        """Handle bytes from the host; return the answers to write."""
        out = bytearray()
        for r in self.decoder.feed(data):
            if isinstance(r, FrameError):
                out += self._on_error(r, wall_ns)
            else:
                out += self._on_frame(r, wall_ns)
        return bytes(out)

    def tick(self, wall_ns: int) -> bytes:
        """Run the device and watchdog; return reports and faults to write."""
        done, fault = self.core.tick(wall_ns)
        out = bytearray()
        for e in done:  # pulses cut short by an epoch change ran (on time): reported before the EPOCH
            out += self._frame(report_for(e))
        for epoch, count in self.core.take_epoch_changes():
            out += self._frame(Epoch(self.core.boot_id, epoch, count))
        if fault is not None:
            out += self._frame(Fault(int(fault), self.core.device.encoder_count()))
        return bytes(out)

    def _on_error(self, r: FrameError, wall_ns: int) -> bytes:
        self.core.counters.bad_frames += 1
        if r.kind in (FrameErrorKind.UNKNOWN_TYPE, FrameErrorKind.BAD_LENGTH) and r.seq is not None:
            # CRC was good: the sequence number is trustworthy, answer that frame
            reason = NakReason.UNKNOWN_TYPE if r.kind == FrameErrorKind.UNKNOWN_TYPE else NakReason.MALFORMED
            self._burst.event(wall_ns, f"{r.kind.value}, type 0x{r.type_byte or 0:02x}")
            return self._frame(Nak(r.seq, 0, int(reason)))
        if self._burst.event(wall_ns, r.kind.value):
            reason = NakReason.BAD_CRC if r.kind == FrameErrorKind.BAD_CRC else NakReason.MALFORMED
            return self._frame(Nak(SEQ_NONE, 0, int(reason)))
        return b""

    def _answer(self, seq: int, o: Outcome) -> bytes:
        if o.accepted:
            out = self._frame(Ack(seq, o.command_id, int(o.code)))
            if o.code == AckResult.DONE:
                e = self.core.execution_of(o.command_id)
                if e is not None:
                    out += self._frame(report_for(e))
            return out
        return self._frame(Nak(seq, o.command_id, int(o.code)))

    def _on_frame(self, f: DecodedFrame, wall_ns: int) -> bytes:
        m = f.message
        if isinstance(m, Fire | Pick):
            if m.epoch == EPOCH_UNSET and self.core.armed:  # epoch 0 never exists: a command from an unsynchronised host
                self.core.counters.rejected += 1
                return self._frame(Nak(f.seq, m.command_id, int(NakReason.WRONG_EPOCH)))
            return self._answer(f.seq, self.core.submit(m))
        if isinstance(m, Cancel):
            return self._answer(f.seq, self.core.cancel(m.command_id))
        if isinstance(m, Heartbeat):
            self.core.heartbeat(wall_ns)
            return b""
        if isinstance(m, Ping):
            d = self.core.device
            epoch = self.core.epoch  # checks the count for a reset first
            return self._frame(Pong(m.host_time_ns, d.device_time_us(), d.encoder_count(), self.core.boot_id, epoch))
        if isinstance(m, StatusRequest):
            return self._frame(self.core.status())
        if isinstance(m, Arm):
            self.core.arm(m.session_id, wall_ns)
            return self._frame(Ack(f.seq, 0, int(AckResult.OK)))
        if isinstance(m, Disarm):
            out = bytearray()
            for e in self.core.disarm():
                out += self._frame(report_for(e))
            return bytes(out) + self._frame(Ack(f.seq, 0, int(AckResult.OK)))
        # a controller -> host message sent to the controller
        self.core.counters.bad_frames += 1
        return self._frame(Nak(f.seq, 0, int(NakReason.UNKNOWN_TYPE)))


class ValveControllerEmulator:
    """Runs ``ValveControllerProtocol`` on a serial port in a background thread.

    The port is a pyserial URL or device path (opened by the emulator, e.g. one end of a
    socat pseudo-terminal pair), or a ``ControllerPort`` already open, such as a
    ``PtyMasterPort`` whose ``host_path`` the host opens (no relay in between). When a
    URL's port disappears (the pseudo-terminal pair is torn down) the emulator keeps
    ticking (the watchdog still closes the valves) and reopens it when it comes back; a
    port handed over open is the emulator's to close, and once lost it stays lost (the
    emulator keeps ticking without it).

    Args:
        url: pyserial URL or device path of the controller's end, or an open ``ControllerPort``.
        device: the device model (encoder and valves).
        limits: safety limits.
        tick_s: period of the device/watchdog tick.
        wall_ns: wall clock for the watchdog.
        baudrate: line rate for a URL (ignored by pseudo-terminals).
    """

    def __init__(
        self,
        url: str | ControllerPort,
        device: DeviceModel,
        limits: ControllerLimits | None = None,
        tick_s: float = 0.0005,
        wall_ns: Callable[[], int] = time.monotonic_ns,
        baudrate: int = 921600,
    ) -> None:
        self._given: ControllerPort | None = None if isinstance(url, str) else url
        self.url = url if isinstance(url, str) else url.name
        self.baudrate = baudrate
        self.core = ControllerCore(device, limits)
        self.protocol = ValveControllerProtocol(self.core)
        self.tick_s = tick_s
        self._wall_ns = wall_ns
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: ControllerPort | None = None
        self.port_counters = self._given.counters if self._given is not None else PortCounters()
        self.reopen_count = 0
        self.frozen = threading.Event()  # set by tests: stop answering (a hung controller)
        self._inject: deque[bytes] = deque()

    def inject(self, data: bytes) -> None:
        """Write raw bytes to the host as they are (noise, damaged or hostile frames), from the emulator's thread."""
        self._inject.append(bytes(data))

    def start(self) -> ValveControllerEmulator:
        self._thread = threading.Thread(target=self._run, name="valve-controller-emulator", daemon=True)
        self._thread.start()
        return self

    def thread_alive(self) -> bool:
        """True while the emulator's thread runs (it must survive any input)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop the thread and close the port (a port handed over open too: the host sees the line hang up)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._close_port()
        if self._given is not None:
            self._given.close()

    def __enter__(self) -> ValveControllerEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _open_port(self) -> None:
        if self._given is not None:
            if self.reopen_count == 0:  # a port handed over is used once: it cannot be reopened
                self._port = self._given
                self.reopen_count += 1
            return
        try:
            self._port = SerialUrlPort(self.url, self.baudrate, counters=self.port_counters)
            self.protocol.decoder.reset()
            self.reopen_count += 1
        except (serial.SerialException, OSError):
            self._port = None

    def _close_port(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def _run(self) -> None:
        next_open = 0.0
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if self._port is None and now >= next_open:
                self._open_port()
                next_open = now + 0.05
            out = b""
            if now >= next_tick:
                out += self.protocol.tick(self._wall_ns())
                next_tick = now + self.tick_s
            port = self._port
            if port is None:
                time.sleep(min(self.tick_s, 0.005))
                continue
            while self._inject:
                out += self._inject.popleft()
            try:
                if out and not self.frozen.is_set():
                    port.write(out)
                data = port.receive(max(0.0, next_tick - time.monotonic()))
                if data and not self.frozen.is_set():
                    reply = self.protocol.receive(data, self._wall_ns())
                    if reply:
                        port.write(reply)
            except (serial.SerialException, OSError) as e:
                log.info("valve controller port %s lost (%s); waiting for it to come back", self.url, e)
                self._close_port()
                next_open = time.monotonic() + 0.05


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: run the emulator with the built-in encoder until Ctrl-C (SIGUSR1 re-zeroes the encoder)."""
    ap = argparse.ArgumentParser(description="Emulated valve controller (serial protocol of firmware_bridge/PROTOCOL.md).")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial device or pyserial URL of the controller's end")
    where.add_argument("--pty", action="store_true", help="own a pseudo-terminal and print the path the host opens")
    ap.add_argument("--valves", type=int, default=64)
    ap.add_argument("--speed-counts-per-s", type=float, default=25000.0, help="encoder rate (belt speed x counts/mm)")
    ap.add_argument("--queue", type=int, default=256, help="command queue capacity")
    ap.add_argument("--watchdog-ms", type=float, default=100.0)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    device = FreeRunningDevice(args.valves, args.speed_counts_per_s)
    limits = ControllerLimits(queue_capacity=args.queue, watchdog_ms=args.watchdog_ms)
    port: str | PtyMasterPort = PtyMasterPort() if args.pty else args.port
    if isinstance(port, PtyMasterPort):
        print(port.host_path, flush=True)  # the host's end, for whoever started this emulator
    emu = ValveControllerEmulator(port, device, limits).start()
    # SIGUSR1: re-zero the encoder (an operator reset): the controller starts a new epoch
    signal.signal(signal.SIGUSR1, lambda _sig, _frame: device.set_count(0))
    log.info("valve controller emulator on %s: %d valves, %.0f counts/s", emu.url, args.valves, args.speed_counts_per_s)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
