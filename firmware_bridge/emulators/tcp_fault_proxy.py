"""A Modbus/TCP man in the middle on loopback that answers chosen requests itself with a fault.

Between a host and a PLC (emulated or real), ``ModbusFaultProxy`` forwards every
request and its answer unchanged, except that the next requests can be answered
by the proxy instead, with what a misbehaving PLC or gateway sends: an exception
of any code (including 9, which no standard server sends), a real exception frame
from a capture, a short or malformed answer, or bytes that are not Modbus at all.
Such a request never reaches the PLC, as when a gateway refuses it.

Fault answers are built per request by a :data:`Reply` (a function of the request's
MBAP unit); the helpers below build the usual ones.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable

from firmware_bridge.modbus_wire import MbapAdu, MbapError, build_mbap, parse_mbap_stream

log = logging.getLogger(__name__)

#: builds the bytes the proxy sends back instead of forwarding a request
Reply = Callable[[MbapAdu], bytes]


def exception_reply(code: int) -> Reply:
    """A well-formed exception answer with ``code`` (any 0..255) to the request's function."""
    return lambda req: build_mbap(req.transaction_id, req.unit_id, bytes([req.function_code | 0x80, code & 0xFF]))


def raw_reply(frame: bytes) -> Reply:
    """``frame`` (a whole Modbus/TCP ADU, e.g. from a capture) with the request's transaction id, otherwise as is."""
    return lambda req: req.transaction_id.to_bytes(2, "big") + frame[2:]


def short_read_reply(registers: int = 2) -> Reply:
    """A valid-looking answer to a read (function 3) carrying ``registers`` registers, whatever was asked."""
    return lambda req: build_mbap(req.transaction_id, req.unit_id, bytes([3, 2 * registers]) + bytes(2 * registers))


def garbage_reply(data: bytes = b"\xde\xad\xbe\xef" * 4) -> Reply:
    """Bytes that are not a Modbus answer."""
    return lambda req: data


class ModbusFaultProxy:
    """Forwards Modbus/TCP between clients and ``upstream``, answering queued requests with faults.

    Args:
        upstream_host: the PLC's address.
        upstream_port: the PLC's port.
        host: address to listen on.
        port: port to listen on; 0 picks a free one (see ``port`` after ``start``).
        timeout_s: how long to wait for the PLC's answer to a forwarded request.
    """

    def __init__(
        self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 2.0
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.timeout_s = timeout_s
        self._listener = socket.create_server((host, port))
        self.port: int = self._listener.getsockname()[1]
        self._faults: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self.forwarded = 0
        self.faulted = 0

    def answer_next(self, reply: Reply, count: int = 1) -> None:
        """Answer the next ``count`` requests (on any connection) with ``reply`` instead of forwarding them."""
        with self._lock:
            self._faults.extend([reply] * count)

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def start(self) -> ModbusFaultProxy:
        t = threading.Thread(target=self._accept, name="modbus-fault-proxy", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()
        for t in self._threads:
            t.join(timeout=2.0)

    def __enter__(self) -> ModbusFaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- private

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(client,), name="modbus-fault-proxy conn", daemon=True)
            t.start()
            self._threads.append(t)

    def _take_fault(self) -> Reply | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        with self._lock:
            self._conns.append(client)
        try:
            upstream = socket.create_connection(self.upstream, timeout=self.timeout_s)
            with self._lock:
                self._conns.append(upstream)
            client.settimeout(0.2)
            buf = b""
            while not self._stop.is_set():
                try:
                    data = client.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    return
                buf += data
                requests, buf = parse_mbap_stream(buf)
                for req in requests:
                    client.sendall(self._answer(req, upstream))
        except (OSError, MbapError) as e:
            log.debug("fault proxy connection ended: %s", e)
        finally:
            for s in (client, upstream):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()

    def _answer(self, req: MbapAdu, upstream: socket.socket) -> bytes:
        fault = self._take_fault()
        if fault is not None:
            self.faulted += 1
            return fault(req)
        upstream.sendall(build_mbap(req.transaction_id, req.unit_id, req.pdu, req.protocol_id))
        buf = b""
        while True:
            data = upstream.recv(4096)
            if not data:
                raise OSError("the PLC closed the connection")
            buf += data
            answers, buf = parse_mbap_stream(buf)
            if answers:
                a = answers[0]
                self.forwarded += 1
                return build_mbap(a.transaction_id, a.unit_id, a.pdu, a.protocol_id)
