"""What can go wrong in one Modbus transaction (pure: no pymodbus here).

``modbus_io`` raises these; ``modbus_session`` reasons about them without a transport.
"""

from __future__ import annotations

#: Modbus exception codes of the standard that this protocol uses (PROTOCOL.md section 6).
EXC_ILLEGAL_FUNCTION = 1
EXC_ILLEGAL_ADDRESS = 2
EXC_ILLEGAL_VALUE = 3
EXC_DEVICE_FAILURE = 4
EXC_DEVICE_BUSY = 6

#: names of the exception codes of the Modbus application protocol (v1.1b3, section 7); 9 is not defined
EXCEPTION_NAMES: dict[int, str] = {
    1: "ILLEGAL_FUNCTION",
    2: "ILLEGAL_DATA_ADDRESS",
    3: "ILLEGAL_DATA_VALUE",
    4: "SERVER_DEVICE_FAILURE",
    5: "ACKNOWLEDGE",
    6: "SERVER_DEVICE_BUSY",
    7: "NEGATIVE_ACKNOWLEDGE",
    8: "MEMORY_PARITY_ERROR",
    10: "GATEWAY_PATH_UNAVAILABLE",
    11: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}


def exception_name(code: int) -> str:
    """The name of a Modbus exception code, or ``unknown(N)`` (never raises)."""
    return EXCEPTION_NAMES.get(code, f"unknown({code})")


class ModbusLinkError(Exception):
    """No (valid) answer: timeout, connection refused or reset. The connection has been closed."""


class ModbusProtocolError(Exception):
    """The device cannot be served by this host at all (another register map or map version): the link stops."""


class ModbusExceptionError(Exception):
    """The device answered with a Modbus exception.

    Attributes:
        function_code: the function the device refused (3, 6, 16, 23).
        code: the exception code (2 illegal address, 3 illegal value, 6 device busy...).
    """

    def __init__(self, function_code: int, code: int) -> None:
        super().__init__(f"Modbus exception {code} ({exception_name(code)}) to function {function_code}")
        self.function_code = function_code
        self.code = code
