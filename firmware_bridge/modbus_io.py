"""The one module that imports pymodbus (pinned ==3.16.1): a register client and a register server.

Everything else in ``firmware_bridge`` sees Modbus as "read/write holding
registers" through these two small classes, so a pymodbus API change touches
this file only.

* ``RegisterClient``: synchronous TCP or RTU client with a short timeout and
  no hidden retries (the link decides what to retry). After a timeout the
  connection is dropped so a late answer can never be mistaken for the next one.
* ``RegisterServer``: a real pymodbus server (TCP, or RTU on a serial port) in
  its own thread and asyncio loop, whose registers are served by a
  ``RegisterHandler`` (the PLC emulator's logic).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import pymodbus
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware_bridge.modbus_errors import (
    EXC_DEVICE_BUSY,
    EXC_DEVICE_FAILURE,
    EXC_ILLEGAL_ADDRESS,
    EXC_ILLEGAL_VALUE,
    ModbusExceptionError,
    ModbusLinkError,
)

log = logging.getLogger(__name__)

PYMODBUS_VERSION = "3.16.1"
if pymodbus.__version__ != PYMODBUS_VERSION:  # pragma: no cover - guarded by the pin in pyproject.toml
    log.warning("pymodbus %s found, firmware_bridge is tested with %s only", pymodbus.__version__, PYMODBUS_VERSION)

Transport = Literal["tcp", "rtu"]

#: exception codes a ``RegisterHandler`` may answer with (pymodbus serves the codes of the standard only: 9 is not one)
SERVER_EXCEPTION_CODES = tuple(int(c) for c in ExcCodes)

__all__ = [
    "EXC_DEVICE_BUSY",
    "EXC_DEVICE_FAILURE",
    "EXC_ILLEGAL_ADDRESS",
    "EXC_ILLEGAL_VALUE",
    "SERVER_EXCEPTION_CODES",
    "ModbusExceptionError",
    "ModbusLinkError",
    "RegisterClient",
    "RegisterHandler",
    "RegisterServer",
    "Transport",
    "quiet_pymodbus",
]


def quiet_pymodbus() -> None:
    """pymodbus logs every failed (re)connect at ERROR; the links report outages themselves, once."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)


class RegisterClient:
    """Holding-register client over Modbus TCP or RTU.

    Args:
        transport: ``"tcp"`` or ``"rtu"``.
        host: TCP host.
        port: TCP port.
        serial_url: serial device for RTU.
        baudrate: RTU line rate.
        unit_id: Modbus device id.
        timeout_s: answer timeout (also the connect timeout); keep it short (0.05-0.2 s).
    """

    def __init__(
        self,
        transport: Transport = "tcp",
        host: str = "127.0.0.1",
        port: int = 502,
        serial_url: str | None = None,
        baudrate: int = 115200,
        unit_id: int = 1,
        timeout_s: float = 0.1,
    ) -> None:
        quiet_pymodbus()
        self.unit_id = unit_id
        self.transport = transport
        self._client: ModbusTcpClient | ModbusSerialClient
        if transport == "tcp":
            self._client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0)
            self.where = f"{host}:{port}"
        else:
            if not serial_url:
                raise ValueError("Modbus RTU needs a serial port: set actuator.modbus.serial_url")
            self._client = ModbusSerialClient(
                serial_url, framer=FramerType.RTU, baudrate=baudrate, timeout=timeout_s, retries=0, reconnect_delay=0
            )
            self.where = serial_url

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    def connect(self) -> bool:
        """Open the connection; False if the device cannot be reached (no exception)."""
        try:
            return bool(self._client.connect())
        except (ConnectionException, OSError):
            return False

    def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]  # pymodbus leaves close() unannotated

    def _call(self, fn: Any, *args: Any, function_code: int, **kw: Any) -> Any:
        """One transaction; ``function_code`` is the one the answer must carry (an answer to another request is a
        malformed answer, never a success)."""
        try:
            rr = fn(*args, device_id=self.unit_id, **kw)
        except (ModbusIOException, ConnectionException, ModbusException, OSError) as e:
            self._drop()
            raise ModbusLinkError(f"no valid answer from {self.where}: {e}") from None
        except Exception as e:  # a reply pymodbus could not make sense of (garbage, truncated): never kill the link
            self._drop()
            raise ModbusLinkError(f"malformed answer from {self.where}: {type(e).__name__}: {e}") from None
        if rr is None:
            self._drop()
            raise ModbusLinkError(f"no answer from {self.where}")
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0) or 0)
            raise ModbusExceptionError(int(getattr(rr, "function_code", 0) or 0) & 0x7F, code)
        answered = int(getattr(rr, "function_code", function_code) or 0)
        if answered != function_code:
            self._drop()
            raise ModbusLinkError(f"malformed answer from {self.where}: function {answered} to a request of {function_code}")
        return rr

    def _registers(self, rr: Any, count: int) -> list[int]:
        """The registers of a read answer, checked against the count asked for."""
        regs = [int(r) & 0xFFFF for r in getattr(rr, "registers", None) or []]
        if len(regs) != count:
            self._drop()
            raise ModbusLinkError(f"{self.where} returned {len(regs)} registers, asked for {count}")
        return regs

    def read(self, address: int, count: int) -> list[int]:
        """Read ``count`` holding registers (FC3)."""
        rr = self._call(self._client.read_holding_registers, address, count=count, function_code=3)
        return self._registers(rr, count)

    def write(self, address: int, values: Sequence[int]) -> None:
        """Write registers (FC16)."""
        self._call(self._client.write_registers, address, list(values), function_code=16)

    def write_one(self, address: int, value: int) -> None:
        """Write one register (FC6)."""
        self._call(self._client.write_register, address, value, function_code=6)

    def write_read(self, write_address: int, values: Sequence[int], read_address: int, read_count: int) -> list[int]:
        """Write then read in one transaction (FC23, read/write multiple registers; the write happens first)."""
        rr = self._call(
            self._client.readwrite_registers,
            function_code=23,
            read_address=read_address,
            read_count=read_count,
            write_address=write_address,
            values=list(values),
        )
        return self._registers(rr, read_count)


class RegisterHandler(Protocol):
    """Serves the registers of an emulated device (called from the server's thread)."""

    def read_registers(self, address: int, count: int) -> list[int] | int:
        """Values of ``address..address+count-1``, or a Modbus exception code."""
        ...

    def write_registers(self, address: int, values: list[int]) -> int | None:
        """Apply a write; return None, or a Modbus exception code to refuse it."""
        ...


class RegisterServer:
    """A pymodbus server (TCP or RTU) in a background thread, backed by a ``RegisterHandler``.

    Args:
        handler: the device logic.
        size: number of holding registers (addresses 0..size-1).
        transport: ``"tcp"`` or ``"rtu"``.
        host: TCP address to bind.
        port: TCP port; 0 picks a free one (see ``port`` after ``start``).
        serial_url: serial device for RTU.
        baudrate: RTU line rate.
    """

    def __init__(
        self,
        handler: RegisterHandler,
        size: int,
        transport: Transport = "tcp",
        host: str = "127.0.0.1",
        port: int = 0,
        serial_url: str | None = None,
        baudrate: int = 115200,
    ) -> None:
        quiet_pymodbus()
        self.handler = handler
        self.size = size
        self.transport = transport
        self.host = host
        self.port = port
        self.serial_url = serial_url
        self.baudrate = baudrate
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._paused_until_s = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` before handling it (a PLC that stops answering for a while)."""
        self._paused_until_s = time.monotonic() + seconds

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        held_s = self._paused_until_s - time.monotonic()
        if held_s > 0:
            await asyncio.sleep(held_s)
        if set_values is None:
            res = self.handler.read_registers(address, count)
            if isinstance(res, int):
                return ExcCodes(res)
            off = address - start_address
            registers[off : off + count] = res
            return None
        rc = self.handler.write_registers(address, [int(v) for v in set_values])
        return ExcCodes(rc) if rc else None

    def _device(self) -> SimDevice:
        return SimDevice(
            id=0,
            simdata=[SimData(0, count=self.size, values=0, datatype=DataType.REGISTERS)],
            action=self._action,
        )

    async def _serve(self) -> None:
        if self.transport == "tcp":
            self._server = ModbusTcpServer(self._device(), address=(self.host, self.port))
        else:
            if not self.serial_url:
                raise ValueError("a Modbus RTU server needs serial_url")
            self._server = ModbusSerialServer(
                self._device(), framer=FramerType.RTU, port=self.serial_url, baudrate=self.baudrate, timeout=0.05
            )
        await self._server.serve_forever(background=True)
        if self.transport == "tcp":
            sockets = getattr(self._server.transport, "sockets", None)
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
        self._started.set()
        await self._server.serving

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:
            self._error = e
            self._started.set()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def start(self, timeout_s: float = 5.0) -> RegisterServer:
        """Start serving; returns when listening.

        Raises:
            RuntimeError: the server could not listen (port in use, bad serial port).
        """
        self._started.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"modbus-server {self.transport}", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"Modbus {self.transport} server did not start: {self._error or 'timeout'}")
        return self

    def stop(self) -> None:
        """Stop serving and close all connections."""
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            fut = asyncio.run_coroutine_threadsafe(server.shutdown(), loop)  # type: ignore[no-untyped-call]
            try:
                fut.result(timeout=2.0)
            except Exception:
                log.debug("Modbus server shutdown raised", exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._thread = None
        self._server = None
        self._loop = None
