"""What the sans-IO Modbus session asks its transport to do, and its timing (pure data).

A :class:`firmware_bridge.modbus_session.ModbusSession` answers every call with one
:data:`Action`: a register transaction to perform (and report back), a connection
to open, or a time until which there is nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass

MS = 1_000_000


@dataclass(frozen=True, slots=True)
class ModbusLinkConfig:
    """Timing of the Modbus link (milliseconds of host time).

    Attributes:
        heartbeat_ms: heartbeat register write period (well under the PLC's 100 ms watchdog).
        poll_ms: header/state poll period while commands are outstanding.
        idle_poll_ms: poll period with nothing outstanding.
        max_retries: re-writes of a command after a transaction failed.
        backoff_min_ms: first pause after "queue full" (busy slot).
        backoff_max_ms: longest pause.
        reconnect_min_ms: first wait before reconnecting.
        reconnect_max_ms: longest wait between reconnection attempts.
        max_counts_per_s: the fastest the encoder can count (physics); a count that moves further between two
            polls, without a new epoch, is treated as an encoder reset (PROTOCOL.md 4.6), judged over the longer of
            the host's span and the PLC's own clock. The default only catches corrupted counts (a belt at 100 km/s
            with 10 counts/mm); the sorter sets it from the belt's top speed (``links.link_max_counts_per_s``).
        backward_tolerance_counts: a count may step back this much (encoder jitter) without counting as a reset.
        fault_hold_ms: the link reports itself down at least this long after any fault, so that a fault over in
            milliseconds is still seen by a health check that runs once a second.
    """

    heartbeat_ms: float = 25.0
    poll_ms: float = 5.0
    idle_poll_ms: float = 50.0
    max_retries: int = 3
    backoff_min_ms: float = 2.0
    backoff_max_ms: float = 200.0
    reconnect_min_ms: float = 50.0
    reconnect_max_ms: float = 2000.0
    max_counts_per_s: float = 1e9
    backward_tolerance_counts: int = 0
    fault_hold_ms: float = 1000.0


@dataclass(frozen=True, slots=True)
class ReadRegisters:
    """FC3: read ``count`` holding registers from ``address``."""

    address: int
    count: int
    function_code = 3


@dataclass(frozen=True, slots=True)
class WriteRegister:
    """FC6: write one register."""

    address: int
    value: int
    function_code = 6


@dataclass(frozen=True, slots=True)
class WriteRegisters:
    """FC16: write consecutive registers."""

    address: int
    values: tuple[int, ...]
    function_code = 16


@dataclass(frozen=True, slots=True)
class WriteReadRegisters:
    """FC23: write ``values`` at ``write_address``, then read ``read_count`` from ``read_address``, in one transaction."""

    write_address: int
    values: tuple[int, ...]
    read_address: int
    read_count: int
    function_code = 23


Transaction = ReadRegisters | WriteRegister | WriteRegisters | WriteReadRegisters


@dataclass(frozen=True, slots=True)
class Connect:
    """Open the connection, then report with ``ModbusSession.connect_result``."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do before ``until_ns`` (host monotonic), unless an input (submit, cancel, poll request) arrives first."""

    until_ns: int


Action = Transaction | Connect | Wait
