"""What the web process needs to know, taken from the ``service:`` section at start-up (picklable)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sorter.runtime.web.listen import EndpointError, is_loopback

if TYPE_CHECKING:  # the web process imports this module too, and needs none of the config machinery
    from sorter.config import Config

TOKEN_ENV = "SORTER_TOKEN"


@dataclass(frozen=True, slots=True)
class WebSettings:
    """Tokens and limits of the HTTP endpoint.

    Attributes:
        token: the bearer token of the controls (and of the view, when ``view_token``); None: controls disabled.
        view_token: the page, image, stream and console data need the token too.
        view_fps: most live images encoded per second (shared by every viewer).
        max_connections: connections and requests served at once; more get 503.
        max_streams: MJPEG streams open at once.
        timeout_s: a request head must arrive, and an idle keep-alive connection is closed, within this time.
        nice: scheduling niceness of the web process (the line's loop wins the CPU).
        line_name: shown in the page title and the API description.
        line_pid: the line's process, whose CPU and memory ``/metrics`` reports.
        log_level: level of the web process's logging.
    """

    token: str | None
    view_token: bool
    view_fps: float = 4.0
    max_connections: int = 512
    max_streams: int = 32
    timeout_s: float = 10.0
    nice: int = 10
    line_name: str = "line"
    line_pid: int | None = None
    log_level: int = logging.WARNING


def web_settings(cfg: Config, env: dict[str, str] | None = None) -> WebSettings:
    """Settings from the config (``SORTER_TOKEN`` overrides ``service.token``).

    Raises:
        EndpointError: the view must be guarded (``token_for_view``, or a non-loopback address by default) but no token is set.
    """
    e = dict(os.environ) if env is None else env
    s = cfg.service
    token = e.get(TOKEN_ENV) or s.token or None
    view_token = s.token_for_view if s.token_for_view is not None else not is_loopback(s.http_host)
    if view_token and token is None:
        why = "service.token_for_view is true" if s.token_for_view else f"service.http_host {s.http_host} is not loopback"
        raise EndpointError(
            f"{why}, so the live page needs a token, but none is set: set service.token (or {TOKEN_ENV}), "
            "or service.token_for_view: false to show the line to anyone who can reach the port"
        )
    return WebSettings(
        token=token, view_token=view_token, view_fps=s.view_fps, max_connections=s.http_max_connections,
        timeout_s=s.http_timeout_s, nice=s.http_nice, line_name=cfg.line.name, line_pid=os.getpid(),
        log_level=logging.getLogger("sorter").getEffectiveLevel(),
    )
