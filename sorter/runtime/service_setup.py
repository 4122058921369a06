"""Start the service parts of a built line: state and controls, the HTTP endpoint and console, and the optional parts
the config asks for (alert rules over the event store, frame collection, live model switching)."""

from __future__ import annotations

import logging

from sorter.runtime.http_api import StatusServer
from sorter.runtime.line import Line
from sorter.runtime.service import ConfigLoader, LineService
from sorter.runtime.web.settings import TOKEN_ENV, web_settings

log = logging.getLogger(__name__)

__all__ = ["TOKEN_ENV", "start_service"]


def _attach_parts(service: LineService, line: Line) -> None:
    """Alert rules (``analytics.alerts``), frame collection (``collect.dir``) and model switching (engine detectors)."""
    from sorter.runtime.alert_hook import start_alerts
    from sorter.runtime.collect_hook import start_collector
    from sorter.runtime.model_hook import SWITCHABLE, ModelReloader

    try:
        service.alerts = start_alerts(line)
        service.collector = start_collector(line)
        if line.cfg.detector.type in SWITCHABLE and hasattr(line.detector, "engine"):
            service.models = ModelReloader(line, line.cfg)
    except BaseException:
        service.close()
        raise


def start_service(line: Line, load_config: ConfigLoader | None) -> tuple[LineService, StatusServer | None]:
    """Attach a :class:`LineService` to ``line``; start the HTTP endpoint when ``service.http_port`` is set.

    Raises:
        EndpointError: the port is in use, the address cannot be bound, or the view must be guarded but no token is set.
        ConfigError: the frame collection's folder cannot be made.
    """
    cfg = line.cfg
    service = LineService(line, load_config)
    line.service = service
    _attach_parts(service, line)
    server: StatusServer | None = None
    if cfg.service.http_port is not None:
        settings = web_settings(cfg)
        server = StatusServer(service, cfg.service.http_host, cfg.service.http_port, settings,
                              in_process=not cfg.service.http_process)
        try:
            server.start()
        except BaseException:
            service.close()
            raise
        if settings.token is None:
            log.info("no token (service.token or %s): POST /pause /resume /reload /rollback are disabled", TOKEN_ENV)
    return service, server
