"""Start the service parts of a built line: state and controls, the HTTP endpoint and console, the event store."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sorter.entities import Command, CommandReport
from sorter.runtime.http_api import StatusServer
from sorter.runtime.line import Line
from sorter.runtime.service import ConfigLoader, LineService
from sorter.runtime.web.settings import TOKEN_ENV, web_settings

log = logging.getLogger(__name__)

__all__ = ["TOKEN_ENV", "ReportTap", "start_service"]


class ReportTap:
    """The line's actuator, passing each batch of reports it returns to the service as well (the console's outcomes).

    Everything else is the wrapped actuator's own (attributes included), so nothing else changes.
    """

    def __init__(self, inner: Any, service: LineService) -> None:
        self.inner = inner
        self._service = service

    def submit(self, commands: Sequence[Command]) -> None:
        self.inner.submit(commands)

    def cancel(self, command_ids: Sequence[int]) -> None:
        self.inner.cancel(command_ids)

    def poll_reports(self) -> list[CommandReport]:
        reports: list[CommandReport] = self.inner.poll_reports()
        self._service.on_reports(reports)
        return reports

    def wait_idle(self, timeout_s: float) -> bool:
        return bool(self.inner.wait_idle(timeout_s))

    def stats(self) -> dict[str, int]:
        return dict(self.inner.stats())

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def start_service(line: Line, load_config: ConfigLoader | None) -> tuple[LineService, StatusServer | None]:
    """Attach a :class:`LineService` to ``line``; start the HTTP endpoint when ``service.http_port`` is set.

    Raises:
        EndpointError: the port is in use, the address cannot be bound, or the view must be guarded but no token is set.
    """
    cfg = line.cfg
    service = LineService(line, load_config)
    line.service = service
    server: StatusServer | None = None
    if cfg.service.http_port is not None:
        settings = web_settings(cfg)
        line.actuator = ReportTap(line.actuator, service)
        server = StatusServer(service, cfg.service.http_host, cfg.service.http_port, settings,
                              in_process=not cfg.service.http_process)
        server.start()
        if settings.token is None:
            log.info("no token (service.token or %s): POST /pause /resume /reload are disabled", TOKEN_ENV)
    return service, server
