"""firmware_bridge: the link between a host and a valve controller or PLC, usable on its own.

Position-stamped commands (encoder counts) over a serial link (COBS frames, CRC-16,
``codec``/``host_session``/``serial_link``) or Modbus (``registers``/``modbus_session``/``modbus_link``);
both host sessions are sans-IO state machines and the links are thin threads around them,
with device emulators speaking the real protocols (``emulators``). The protocol is
specified in ``PROTOCOL.md``. This package never imports ``sorter``.
"""
