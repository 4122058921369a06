"""The listening socket of the HTTP endpoint, bound the same way by the server and by ``sorter check``.

Address reuse (``SO_REUSEADDR``) lets a restarted service bind its port while
connections of the previous run linger in TIME_WAIT (about 60 s after any
request), and still refuses a port on which another process is listening.
"""

from __future__ import annotations

import errno
import socket

from sorter.errors import SorterError

#: Pending connections the kernel queues before the web process accepts them.
BACKLOG = 1024


class EndpointError(SorterError):
    """The HTTP endpoint cannot start (port in use, address not available)."""


def bind_listener(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound to ``host:port`` with address reuse, listening unless ``listen`` is False.

    Raises:
        EndpointError: the port is in use or the address cannot be bound, with what to do.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise EndpointError(f"service.http_host {host!r} is not an address of this machine ({e}); use e.g. 127.0.0.1") from e
    family, kind, proto, _name, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        if listen:
            sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise EndpointError(
                f"service.http_port {port} on {host} is already in use (another sorter running?); "
                "stop the other process or choose another port in the config"
            ) from e
        raise EndpointError(f"cannot listen on {host}:{port}: {e.strerror or e}; check service.http_host") from e
    return sock


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
