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


class ModbusLinkError(Exception):
    """No (valid) answer: timeout, connection refused or reset. The connection has been closed."""


class ModbusExceptionError(Exception):
    """The device answered with a Modbus exception.

    Attributes:
        function_code: the function the device refused (3, 6, 16, 23).
        code: the exception code (2 illegal address, 3 illegal value, 6 device busy...).
    """

    def __init__(self, function_code: int, code: int) -> None:
        super().__init__(f"Modbus exception {code} to function {function_code}")
        self.function_code = function_code
        self.code = code
