"""systemd notifications (READY, WATCHDOG, STATUS, STOPPING) over ``$NOTIFY_SOCKET``, standard library only.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op. The watchdog is
fed from the main loop, so a hung loop stops the pings and systemd restarts
the service (``WatchdogSec=`` in the unit).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends ``sd_notify`` datagrams; ``watchdog_due()`` paces pings at half of ``$WATCHDOG_USEC``."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        e = os.environ if env is None else env
        addr = e.get("NOTIFY_SOCKET") or None
        if addr is not None and addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        self._addr = addr
        usec = e.get("WATCHDOG_USEC")
        pid = e.get("WATCHDOG_PID")
        mine = pid is None or pid == str(os.getpid())
        self.watchdog_interval_s: float | None = int(usec) / 2e6 if usec and usec.isdigit() and mine else None
        self._last_ping = 0.0
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def notify(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines (``notify(READY="1", STATUS="running")``); False when not under systemd or on error."""
        if self._addr is None:
            return False
        msg = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(msg, self._addr)
            return True
        except OSError as e:
            log.warning("sd_notify to %r failed: %s", self._addr, e)
            return False

    def ready(self, status: str) -> bool:
        return self.notify(READY="1", STATUS=status)

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING="1", STATUS=status)

    def watchdog_due(self, now_s: float | None = None) -> bool:
        """True when a watchdog ping should be sent now."""
        if self.watchdog_interval_s is None or self._addr is None:
            return False
        now = time.monotonic() if now_s is None else now_s
        return now - self._last_ping >= self.watchdog_interval_s

    def ping(self, status: str | None = None, now_s: float | None = None) -> bool:
        self._last_ping = time.monotonic() if now_s is None else now_s
        return self.notify(WATCHDOG="1", **({"STATUS": status} if status else {}))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
