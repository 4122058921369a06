"""What the configured controller link needs from this machine, checked before anything is opened.

An emulated serial link (and an emulated Modbus RTU link) needs ``socat`` to make
its pseudo-terminal pair; a real serial controller needs its device node to exist
and to be readable and writable by this user. Each missing piece is one line
naming the key, the value and the fix, so ``sorter check`` FAILs clearly and
``sorter run`` refuses to start instead of failing with a traceback.
"""

from __future__ import annotations

import grp
import os
import shutil
import stat
from pathlib import Path

from sorter.config import Config

LINK_TYPES = ("serial", "modbus")


def _serial_port_problems(key: str, url: str) -> list[str]:
    """A local serial device (``/dev/ttyACM0``) must exist, be a character device and be readable and writable."""
    if "://" in url:  # pyserial URL handlers (socket://, rfc2217://, loop://) reach a port elsewhere
        return []
    path = Path(url)
    try:
        st = path.stat()
    except FileNotFoundError:
        return [
            f"{key} = '{url}' does not exist: the controller is not plugged in or has another name; "
            "check the cable and 'ls /dev/serial/by-id/', then set the key to its port"
        ]
    except OSError as e:
        return [f"{key} = '{url}' cannot be inspected ({e.strerror}); check the path"]
    if not stat.S_ISCHR(st.st_mode):
        return [f"{key} = '{url}' is not a serial device (not a character device); set it to the controller's port"]
    if not os.access(path, os.R_OK | os.W_OK):
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        return [
            f"{key} = '{url}': this user may not read and write it (owned by group '{group}'); "
            f"add the service user to that group (e.g. 'usermod -aG {group} sorter') and log in again"
        ]
    return []


def link_environment_problems(cfg: Config) -> list[str]:
    """Why the configured controller link cannot be opened on this machine (empty: nothing missing)."""
    kind = cfg.actuator.type
    if kind not in LINK_TYPES:
        return []
    rtu = kind == "modbus" and cfg.actuator.modbus.transport == "rtu"
    if cfg.actuator.emulator == "firmware" and cfg.camera.type == "sim":
        from sorter.actuate.firmware_board import DEBIAN_PACKAGES, firmware_missing

        why = firmware_missing()
        if why:
            return [
                f"actuator.emulator = 'firmware' builds and emulates the firmware: {why}; "
                f"install the toolchain (apt-get install {DEBIAN_PACKAGES}) or use actuator.emulator: true"
            ]
        return []
    if cfg.actuator.emulator and cfg.camera.type == "sim":  # a real plant lends no device to emulate
        if (kind == "serial" or rtu) and shutil.which("socat") is None:
            what = "serial" if kind == "serial" else "Modbus RTU"
            return [
                f"actuator.type = {kind} with actuator.emulator = true: the emulated {what} port needs 'socat', "
                "which is not installed (or not on PATH); install it (e.g. 'apt-get install socat') "
                "or use actuator.type: modbus (TCP) or sim"
            ]
        return []
    if kind == "serial":
        return _serial_port_problems("actuator.serial.url", cfg.actuator.serial.url)
    if rtu:
        url = cfg.actuator.modbus.serial_url
        if not url:
            return ["actuator.modbus.transport = rtu needs actuator.modbus.serial_url (the PLC's serial port)"]
        return _serial_port_problems("actuator.modbus.serial_url", url)
    return []
