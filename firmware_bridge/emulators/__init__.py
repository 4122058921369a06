"""Device emulators speaking the real protocols: a serial valve controller and a Modbus PLC."""
