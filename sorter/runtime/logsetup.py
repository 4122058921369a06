"""Logging set-up, once, for the ``sorter`` command: plain lines on a terminal, structured entries for journald.

Under systemd (``$JOURNAL_STREAM`` set) each record is sent to journald over its
native protocol (a datagram of ``FIELD=value`` lines on
``/run/systemd/journal/socket``, standard library only) with its priority, the
logger, the code location and the sorter's own fields, so that

    journalctl -u sorter -p warning                 warnings and errors only
    journalctl -u sorter SORTER_FAULT=camera        every camera fault
    journalctl -u sorter -o json                    everything, machine-readable

work. A record adds fields with ``log.error(..., extra={"journal": {"SORTER_FAULT": "camera"}})``.
When the socket cannot be used, lines go to stderr starting with the syslog
priority in angle brackets, which journald also understands.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping
from typing import Any

#: Python level -> syslog priority (sd-daemon(3) prefixes).
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    """``<P>logger: message`` with ``P`` the syslog priority; tracebacks stay on the following lines."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 3 if record.levelno > logging.ERROR else 6)
        return f"<{prio}>{super().format(record)}"


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes to whatever ``sys.stderr`` is at each record, not the one it was made with.

    ``sorter`` may be run several times in one process (tests, embedding); a handler bound to an old,
    since-closed stderr would fail on every later record.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


JOURNAL_SOCKET = "/run/systemd/journal/socket"
_FIELD = re.compile(r"^[A-Z0-9][A-Z0-9_]{0,63}$")  # journald's rule for field names (no leading underscore: trusted)


def journal_datagram(fields: Mapping[str, str]) -> bytes:
    """Encode ``fields`` in journald's native protocol: ``KEY=value\n``, or ``KEY\n<u64 le length>value\n`` for multi-line values.

    Raises:
        ValueError: a field name journald would refuse.
    """
    out = bytearray()
    for key, value in fields.items():
        if not _FIELD.match(key):
            raise ValueError(f"journal field name {key!r}: use A-Z, 0-9 and _, not starting with _")
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """Sends each record to journald as one structured entry; falls back to a priority-tagged stderr line.

    Args:
        socket_path: journald's native socket.
        identifier: ``SYSLOG_IDENTIFIER`` of the entries (``journalctl -t sorter``).
    """

    def __init__(self, socket_path: str = JOURNAL_SOCKET, identifier: str = "sorter") -> None:
        super().__init__()
        self.socket_path, self.identifier = socket_path, identifier
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._fallback = StderrHandler()
        self._fallback.setFormatter(JournalFormatter())
        self.setFormatter(logging.Formatter("%(message)s"))

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        """The entry for ``record``: message (traceback included), priority, logger, code location, extra fields."""
        fields = {
            "MESSAGE": self.format(record),
            "PRIORITY": str(_PRIORITY.get(record.levelno, 3 if record.levelno > logging.ERROR else 6)),
            "SYSLOG_IDENTIFIER": self.identifier,
            "LOGGER": record.name,
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            "CODE_FUNC": record.funcName,
            "THREAD_NAME": record.threadName or "",
        }
        extra = getattr(record, "journal", None)
        if isinstance(extra, Mapping):
            fields.update({str(k).upper(): str(v) for k, v in extra.items() if _FIELD.match(str(k).upper())})
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._sock.sendto(journal_datagram(self.fields(record)), self.socket_path)
        except OSError:  # no journald (yet), or an entry too big for one datagram: a plain line instead
            self._fallback.handle(record)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._sock.close()
        super().close()


def configure_logging(level: int, env: Mapping[str, str] | None = None) -> logging.Handler:
    """Install one handler on the root logger (replacing earlier ones) and return it.

    Under systemd (``$JOURNAL_STREAM``) with journald's socket present: a :class:`JournalHandler`
    (``$SORTER_JOURNAL_SOCKET`` names another socket); otherwise a stderr handler.
    """
    e = os.environ if env is None else env
    handler: logging.Handler
    sock = e.get("SORTER_JOURNAL_SOCKET", JOURNAL_SOCKET)
    if e.get("JOURNAL_STREAM") and os.path.exists(sock):
        handler = JournalHandler(sock)
    elif e.get("JOURNAL_STREAM"):
        handler = StderrHandler()
        handler.setFormatter(JournalFormatter())
    else:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
