"""Start the service parts of a built line: state and controls, the HTTP endpoint, the event store."""

from __future__ import annotations

import logging
import os

from sorter.runtime.http_api import StatusServer
from sorter.runtime.line import Line
from sorter.runtime.service import ConfigLoader, LineService

log = logging.getLogger(__name__)

TOKEN_ENV = "SORTER_TOKEN"


def start_service(line: Line, load_config: ConfigLoader | None) -> tuple[LineService, StatusServer | None]:
    """Attach a :class:`LineService` to ``line``; start the HTTP endpoint when ``service.http_port`` is set.

    Raises:
        EndpointError: the port is in use or the address cannot be bound (say which, and what to do).
    """
    cfg = line.cfg
    service = LineService(line, load_config)
    line.service = service
    server: StatusServer | None = None
    if cfg.service.http_port is not None:
        token = os.environ.get(TOKEN_ENV) or cfg.service.token
        server = StatusServer(service, cfg.service.http_host, cfg.service.http_port, token)
        server.start()
        if token is None:
            log.info("no token (service.token or %s): POST /pause /resume /reload are disabled", TOKEN_ENV)
    return service, server
