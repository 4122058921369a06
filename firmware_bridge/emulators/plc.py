"""Emulated PLC: the register map of PROTOCOL.md section 6 on a real pymodbus server.

``PlcRegisters`` is the PLC program: it serves the register map from a
``ControllerCore`` (reads build the image, writes are commands), and its
``tick`` plays the PLC scan (device compare unit, watchdog, slot states).
``PlcEmulator`` runs it behind ``RegisterServer`` (TCP or RTU) with a tick
thread.

Run standalone (built-in encoder)::

    python -m firmware_bridge.emulators.plc --port 5020 --valves 64 --speed-counts-per-s 25000
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge import registers as rmap
from firmware_bridge.controller import ControllerCore, ControllerLimits
from firmware_bridge.device import DeviceModel, Execution
from firmware_bridge.emulators.rezero import RezeroableDevice
from firmware_bridge.messages import AckResult, Fire, NakReason, Pick
from firmware_bridge.modbus_io import (
    EXC_DEVICE_BUSY,
    EXC_ILLEGAL_ADDRESS,
    EXC_ILLEGAL_VALUE,
    SERVER_EXCEPTION_CODES,
    RegisterServer,
    Transport,
)
from firmware_bridge.ratelimit import BurstLog

log = logging.getLogger(__name__)


_EMPTY = rmap.SlotResult(rmap.SlotState.EMPTY, 0, 0, 0)


def new_boot_id() -> int:
    """A random non-zero u32 (PROTOCOL.md 4.6)."""
    return random.getrandbits(32) or 1


@dataclass(slots=True)
class _Slot:
    command: Fire | Pick | None = None
    epoch: int = 0
    result: rmap.SlotResult = _EMPTY


class PlcRegisters:
    """The PLC program over a ``ControllerCore``: implements ``modbus_io.RegisterHandler``.

    The PLC owns its encoder counter: the core's device is wrapped in a ``RezeroableDevice``
    (unless it is one), so that :meth:`reset_encoder` can re-zero the count.

    Args:
        core: command logic and device.
        wall_ns: wall clock for the heartbeat/watchdog.
        boot_id: the boot id of this start; random when None.
        map_version: the version register (2; another value plays an older or newer PLC).
    """

    def __init__(
        self,
        core: ControllerCore,
        wall_ns: Callable[[], int] = time.monotonic_ns,
        boot_id: int | None = None,
        map_version: int = rmap.MAP_VERSION,
    ) -> None:
        if not isinstance(core.device, RezeroableDevice):
            core.device = RezeroableDevice(core.device)
        self.core = core
        self.map_version = map_version
        self._wall_ns = wall_ns
        self._lock = threading.RLock()
        self._burst = BurstLog(log, "PLC refused malformed register writes")
        self._injected: deque[int] = deque()
        self._power_up(boot_id)

    def _power_up(self, boot_id: int | None) -> None:
        self.boot_id = (boot_id if boot_id is not None else new_boot_id()) & 0xFFFFFFFF
        self.epoch = 1
        self._slots = [_Slot() for _ in range(rmap.SLOT_COUNT)]
        self._heartbeat: int | None = None
        self._cancel_result = 0
        self._session_reg = 0
        self.bad_writes = 0
        self.queue_full = 0

    @property
    def device(self) -> RezeroableDevice:
        dev = self.core.device
        assert isinstance(dev, RezeroableDevice)
        return dev

    # ------------------------------------------------------------ faults

    def power_cycle(self, boot_id: int | None = None) -> None:
        """A PLC restart: outputs off, everything forgotten (EMPTY slots, disarmed), count from 0, a new boot id."""
        with self._lock:
            self.core.disarm()
            self.device.rezero()
            self.core = ControllerCore(self.device, self.core.limits)
            self._power_up(boot_id)
            log.info("PLC restarted: boot id 0x%08x", self.boot_id)

    def reset_encoder(self) -> None:
        """The count is re-zeroed (homing, operator): a new epoch; queued slots DROPPED with reason 9; stays armed."""
        with self._lock:
            armed, session = self.core.armed, self.core.session_id
            done = self.core.disarm()  # outputs off, queue dropped (not into the history)
            self._executed(done)
            self.device.rezero()
            self.epoch = self.epoch % 0xFFFF + 1  # wraps, skipping 0
            if armed:
                self.core.arm(session, self._wall_ns())
            self._sync_slots(drop_reason=rmap.REASON_WRONG_EPOCH)
            log.info("PLC encoder re-zeroed: epoch %d", self.epoch)

    def inject_exceptions(self, code: int, count: int = 1) -> None:
        """Answer the next ``count`` requests (reads or writes) with Modbus exception ``code``, changing nothing."""
        if code not in SERVER_EXCEPTION_CODES:
            raise ValueError(f"exception code {code} cannot be served by the Modbus server (use one of {SERVER_EXCEPTION_CODES})")
        with self._lock:
            self._injected.extend([code] * count)

    def _take_injected(self) -> int | None:
        return self._injected.popleft() if self._injected else None

    # ------------------------------------------------------------ reads

    def read_registers(self, address: int, count: int) -> list[int] | int:
        with self._lock:
            injected = self._take_injected()
            if injected is not None:
                return injected
            if address < 0 or count < 1 or address + count > rmap.MAP_SIZE:
                return EXC_ILLEGAL_ADDRESS
            out: list[int] = []
            end = address + count
            if address < rmap.POLL_SIZE:
                image = self._header_image() + self._control_image() + self._mirror_image()
                out += image[address : min(end, rmap.POLL_SIZE)]
            if end > rmap.POLL_SIZE:
                lo = max(address, rmap.POLL_SIZE)
                region = [0] * (rmap.SLOT_BASE - rmap.POLL_SIZE) + self._slots_image()
                out += region[lo - rmap.POLL_SIZE : end - rmap.POLL_SIZE]
            return out

    def _header_image(self) -> list[int]:
        st = self.core.status()
        c = self.core.counters
        return rmap.Header(
            magic=rmap.MAGIC,
            version=self.map_version,
            valve_count=st.valve_count,
            slot_count=rmap.SLOT_COUNT,
            flags=st.flags,
            fault_code=st.fault_code,
            queue_len=st.queue_len,
            queue_capacity=min(st.queue_capacity, rmap.SLOT_COUNT),
            encoder_count=st.encoder_count,
            device_time_us=self.core.device.device_time_us(),
            executed=c.executed,
            late=c.late,
            rejected=c.rejected,
            bad_writes=self.bad_writes,
            watchdog_trips=c.watchdog_trips,
            session_id=st.session_id,
            queue_full=self.queue_full + c.queue_full,
            boot_id=self.boot_id,
        ).to_regs()

    def _control_image(self) -> list[int]:
        r = [0] * (rmap.STATE_BASE - rmap.HEADER_SIZE)
        r[rmap.REG_HEARTBEAT - rmap.HEADER_SIZE] = self._heartbeat or 0
        r[rmap.REG_CONTROL_SESSION - rmap.HEADER_SIZE : rmap.REG_CONTROL_SESSION - rmap.HEADER_SIZE + 2] = rmap.u32_to_regs(
            self._session_reg
        )
        r[rmap.REG_CANCEL_RESULT - rmap.HEADER_SIZE] = self._cancel_result
        r[rmap.REG_EPOCH - rmap.HEADER_SIZE] = self.epoch
        return r

    def _mirror_image(self) -> list[int]:
        return [(s.result.reason & 0xFF) << 8 | int(s.result.state) for s in self._slots]

    def _slots_image(self) -> list[int]:
        out: list[int] = []
        for s in self._slots:
            written = rmap.encode_slot(s.command, s.epoch) if s.command is not None else [0] * rmap.SLOT_WRITE_SIZE
            out += written + s.result.to_regs()
        return out

    # ----------------------------------------------------------- writes

    def write_registers(self, address: int, values: list[int]) -> int | None:
        with self._lock:
            injected = self._take_injected()
            if injected is not None:
                return injected
            n = len(values)
            if address == rmap.REG_HEARTBEAT and n == 1:
                if values[0] != self._heartbeat:
                    self._heartbeat = values[0]
                    self.core.heartbeat(self._wall_ns())
                return None
            if address == rmap.REG_CONTROL and n == 3:
                return self._control(values[0], rmap.regs_to_u32(values[1:3]))
            if address == rmap.REG_CANCEL_ID and n == 2:
                o = self.core.cancel(rmap.regs_to_u32(values))
                self._cancel_result = int(o.code)
                self._sync_slots()
                return None
            off = address - rmap.SLOT_BASE
            if off >= 0 and off % rmap.SLOT_SIZE == 0 and off // rmap.SLOT_SIZE < rmap.SLOT_COUNT and n == rmap.SLOT_WRITE_SIZE:
                return self._slot_write(off // rmap.SLOT_SIZE, values)
            return self._bad(
                EXC_ILLEGAL_ADDRESS, f"write of {n} registers at {address} is not a heartbeat, control, cancel or slot write"
            )

    def _bad(self, code: int, why: str) -> int:
        self.bad_writes += 1
        self._burst.event(self._wall_ns(), why)
        return code

    def _control(self, ctrl: int, session: int) -> int | None:
        if ctrl == rmap.CONTROL_ARM:
            new_session = session != self.core.session_id
            self._session_reg = session
            self.core.arm(session, self._wall_ns())
            self._sync_slots(new_session=new_session)
            return None
        if ctrl == rmap.CONTROL_DISARM:
            self._executed(self.core.disarm())
            self._sync_slots()
            return None
        return self._bad(EXC_ILLEGAL_VALUE, f"control value {ctrl} is neither ARM (1) nor DISARM (2)")

    def _slot_write(self, index: int, values: list[int]) -> int | None:
        cmd = rmap.decode_slot(values)
        if cmd is None:
            return self._bad(EXC_ILLEGAL_VALUE, f"slot {index}: kind {values[2]} is neither FIRE (1) nor PICK (2)")
        if rmap.slot_of(cmd.command_id) != index:
            return self._bad(
                EXC_ILLEGAL_VALUE, f"command {cmd.command_id} belongs in slot {rmap.slot_of(cmd.command_id)}, not {index}"
            )
        epoch = values[rmap.SLOT_EPOCH]
        slot = self._slots[index]
        busy = slot.result.state == rmap.SlotState.QUEUED and slot.command is not None
        if busy and slot.command is not None and slot.command.command_id != cmd.command_id:
            self.queue_full += 1
            return EXC_DEVICE_BUSY
        if busy and (slot.command, slot.epoch) != (cmd, epoch):
            return self._bad(EXC_ILLEGAL_VALUE, f"command id {cmd.command_id} rewritten with different content")
        if epoch != self.epoch:  # positions of another epoch: never executed (PROTOCOL.md 4.6)
            self.core.counters.rejected += 1
            slot.command, slot.epoch = cmd, epoch
            slot.result = rmap.SlotResult(rmap.SlotState.REJECTED, rmap.REASON_WRONG_EPOCH, 0, 0)
            return None
        o = self.core.submit(cmd)
        if not o.accepted and o.code == NakReason.QUEUE_FULL:
            return EXC_DEVICE_BUSY
        slot.command, slot.epoch = cmd, epoch
        if o.accepted:
            e = self.core.execution_of(cmd.command_id) if o.code == AckResult.DONE else None
            if e is not None:
                slot.result = rmap.SlotResult(rmap.SlotState.EXECUTED, 0, e.open_count, e.close_count)
            elif o.code == AckResult.CANCELLED:
                slot.result = rmap.SlotResult(rmap.SlotState.CANCELLED, 0, 0, 0)
            else:
                slot.result = rmap.SlotResult(rmap.SlotState.QUEUED, int(o.code), 0, 0)
        else:
            state = rmap.SlotState.LATE if o.code == NakReason.LATE else rmap.SlotState.REJECTED
            slot.result = rmap.SlotResult(state, int(o.code), 0, 0)
        return None

    # ------------------------------------------------------------- scan

    def tick(self) -> None:
        """One PLC scan: device, watchdog, slot states."""
        with self._lock:
            done, _fault = self.core.tick(self._wall_ns())
            self._executed(done)
            self._sync_slots()

    def _executed(self, done: list[Execution]) -> None:
        for e in done:
            slot = self._slots[rmap.slot_of(e.command_id)]
            if slot.command is not None and slot.command.command_id == e.command_id:
                slot.result = rmap.SlotResult(rmap.SlotState.EXECUTED, 0, e.open_count, e.close_count)

    def _sync_slots(self, new_session: bool = False, drop_reason: int = 0) -> None:
        """QUEUED slots whose command the core no longer holds become EXECUTED, CANCELLED or DROPPED (with ``drop_reason``)."""
        for slot in self._slots:
            if slot.command is None:
                continue
            if new_session and slot.result.state != rmap.SlotState.QUEUED:
                slot.command = None
                slot.result = rmap.SlotResult(rmap.SlotState.EMPTY, 0, 0, 0)
                continue
            if slot.result.state != rmap.SlotState.QUEUED or self.core.is_pending(slot.command.command_id):
                continue
            e = self.core.execution_of(slot.command.command_id)
            if e is not None:
                slot.result = rmap.SlotResult(rmap.SlotState.EXECUTED, 0, e.open_count, e.close_count)
            elif self._cancelled(slot.command.command_id):
                slot.result = rmap.SlotResult(rmap.SlotState.CANCELLED, 0, 0, 0)
            else:
                slot.result = rmap.SlotResult(rmap.SlotState.DROPPED, drop_reason, 0, 0)

    def _cancelled(self, command_id: int) -> bool:
        o = self.core.cancel(command_id)  # idempotent: answers CANCELLED for a cancelled id
        return bool(o.code == AckResult.CANCELLED)


class PlcEmulator:
    """A PLC on Modbus TCP or RTU: ``PlcRegisters`` behind a real pymodbus server plus a scan thread.

    Args:
        device: the device model.
        limits: safety limits (queue capacity is at most the 64 slots).
        transport: ``"tcp"`` or ``"rtu"``.
        host: TCP bind address.
        port: TCP port, 0 for a free one (read ``port`` after ``start``).
        serial_url: RTU serial port.
        scan_s: PLC scan period.
        wall_ns: wall clock of the watchdog.
        map_version: the version register (another value plays a PLC of another map version).
    """

    def __init__(
        self,
        device: DeviceModel,
        limits: ControllerLimits | None = None,
        transport: Transport = "tcp",
        host: str = "127.0.0.1",
        port: int = 0,
        serial_url: str | None = None,
        baudrate: int = 115200,
        scan_s: float = 0.0005,
        wall_ns: Callable[[], int] = time.monotonic_ns,
        map_version: int = rmap.MAP_VERSION,
    ) -> None:
        lim = limits or ControllerLimits(queue_capacity=rmap.SLOT_COUNT)
        if lim.queue_capacity > rmap.SLOT_COUNT:
            lim = dataclasses.replace(lim, queue_capacity=rmap.SLOT_COUNT)
        self.plc = PlcRegisters(ControllerCore(device, lim), wall_ns, map_version=map_version)
        self.server = RegisterServer(self.plc, rmap.MAP_SIZE, transport, host, port, serial_url, baudrate)
        self.scan_s = scan_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def core(self) -> ControllerCore:
        """The command logic of the running PLC program (a new one after :meth:`restart`)."""
        return self.plc.core

    @property
    def port(self) -> int:
        return self.server.port

    def encoder_count(self) -> int:
        """The PLC's encoder count (re-zeroed by :meth:`reset_encoder` and :meth:`restart`)."""
        return self.plc.device.encoder_count()

    def restart(self, down_s: float = 0.0) -> None:
        """A power cycle: off the network for ``down_s``, then back with a new boot id, count from 0, nothing armed."""
        self.server.stop()
        self.plc.power_cycle()
        if down_s > 0:
            time.sleep(down_s)
        self.server.start()

    def reset_encoder(self) -> None:
        """Re-zero the encoder count while running (a new epoch; queued commands dropped)."""
        self.plc.reset_encoder()

    def inject_exceptions(self, code: int, count: int = 1) -> None:
        """Answer the next ``count`` requests with Modbus exception ``code`` (see ``PlcRegisters.inject_exceptions``)."""
        self.plc.inject_exceptions(code, count)

    def pause(self, seconds: float) -> None:
        """Stop answering for ``seconds`` (requests wait, as in a PLC stopped by its programming tool); the scan runs on."""
        self.server.pause(seconds)

    def start(self) -> PlcEmulator:
        """Start the scan thread and the server (returns when listening)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._scan, name="plc-emulator-scan", daemon=True)
            self._thread.start()
        self.server.start()
        return self

    def stop_server(self) -> None:
        """Stop answering on the network (the PLC program keeps scanning: its watchdog still runs)."""
        self.server.stop()

    def stop(self) -> None:
        self.server.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def __enter__(self) -> PlcEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _scan(self) -> None:
        while not self._stop.is_set():
            self.plc.tick()
            time.sleep(self.scan_s)


if __name__ == "__main__":
    from firmware_bridge.emulators.plc_cli import main

    raise SystemExit(main())
