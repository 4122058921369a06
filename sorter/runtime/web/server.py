"""The web server: uvicorn serving :func:`~sorter.runtime.web.app.create_app` on the socket the line bound.

Run in its own process (:func:`run_process`, the default) or, for debugging, in a
thread of the line's process (:func:`run_thread`). Either way it reads the line's
snapshots from a pipe and stops when the line says so or goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sorter.runtime.web.app import create_app
from sorter.runtime.web.hub import Hub
from sorter.runtime.web.listen import BACKLOG
from sorter.runtime.web.settings import WebSettings

log = logging.getLogger(__name__)


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol plus a read timeout: a request head must arrive within ``timeout_keep_alive``.

    uvicorn closes idle keep-alive connections, but not a connection that never
    sends a complete request (opened and left silent, or fed a byte at a time).
    """

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._head_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.cycle is not None and not self.cycle.response_complete:
            self._head_timer.cancel()  # a request is being answered
            self._head_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the line decides when the web server stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _config(app: Any, settings: WebSettings) -> uvicorn.Config:
    return uvicorn.Config(
        app, http=HeadTimeoutH11Protocol, ws="none", lifespan="off", loop="asyncio", log_config=None, access_log=False,
        limit_concurrency=settings.max_connections, backlog=BACKLOG, timeout_keep_alive=max(1, round(settings.timeout_s)),
        timeout_graceful_shutdown=1, server_header=False, proxy_headers=False,
    )


def serve(sock: socket.socket, conn: Connection, settings: WebSettings) -> None:
    """Serve until the line sends ``stop`` or closes the pipe."""
    hub = Hub(conn)
    server = _Server(_config(create_app(hub, settings), settings))

    def stop() -> None:
        server.should_exit = True

    hub.on_exit = stop

    async def main() -> None:
        hub.start(asyncio.get_running_loop())
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        hub.send(("ready",))
        await serving

    asyncio.run(main())


def _quiet_logging(level: int) -> None:
    """Log lines in the line's format to the same stderr (the journal); uvicorn's own chatter only at debug level."""
    from sorter.runtime.logsetup import configure_logging

    configure_logging(level)
    if level > logging.DEBUG:
        logging.getLogger("uvicorn").setLevel(logging.WARNING)


def run_process(sock: socket.socket, conn: Connection, settings: WebSettings) -> None:
    """Entry point of the web process (``multiprocessing``, spawn)."""
    with contextlib.suppress(OSError):
        os.nice(settings.nice)
    # Ctrl-C reaches the whole process group and systemd signals the whole unit: the line stops this process in order
    # once its loop has drained (or this process sees the pipe close when the line is gone).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _quiet_logging(settings.log_level)
    try:
        serve(sock, conn, settings)
    finally:
        sock.close()


def run_thread(sock: socket.socket, conn: Connection, settings: WebSettings) -> None:
    """Serve from a thread of the line's process (``service.http_process: false``)."""
    serve(sock, conn, settings)
