"""The service's HTTP endpoint: health, status, Prometheus metrics, a live page, and token-guarded controls.

Standard library only (``http.server``), served from its own daemon threads so a
slow client never touches the main loop. Bound to 127.0.0.1 unless the config
says otherwise. Anything that changes state (``POST /pause``, ``/resume``,
``/reload``) needs ``Authorization: Bearer <token>``; without a configured token
those endpoints are disabled.
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from sorter.errors import SorterError
from sorter.runtime.metrics_text import MetricsSnapshot, prometheus_text

log = logging.getLogger(__name__)


class EndpointError(SorterError):
    """The HTTP endpoint cannot start (port in use, address not available)."""


class ServiceHooks(Protocol):
    """What the endpoint reads from, and asks of, the running line (implemented by ``LineService``)."""

    def health(self) -> tuple[bool, str]:
        """``(healthy, reason)``."""
        ...

    def status(self) -> dict[str, Any]: ...

    def metrics(self) -> MetricsSnapshot: ...

    def frame_jpeg(self) -> bytes | None:
        """The latest frame with overlays, JPEG-encoded; ``None`` before the first frame."""
        ...

    def pause(self, reason: str) -> None: ...

    def resume(self) -> None: ...

    def reload(self) -> tuple[bool, str]:
        """Re-read the config files; ``(applied, message)``."""
        ...


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>sorter</title>
<style>body{font-family:sans-serif;margin:1em;background:#111;color:#eee}img{max-width:100%;border:1px solid #444}
pre{background:#222;padding:.5em}</style></head><body>
<h3>sorter: <span id="state">...</span></h3><img id="frame" alt="latest frame"><pre id="status"></pre>
<script>
async function tick(){
  try{const s=await (await fetch('/status')).json();
      document.getElementById('state').textContent=s.state+(s.reason?' ('+s.reason+')':'');
      document.getElementById('status').textContent=JSON.stringify(s,null,1);}catch(e){}
  document.getElementById('frame').src='/frame.jpg?t='+Date.now();
}
setInterval(tick,500);tick();
</script></body></html>
"""


class StatusServer:
    """HTTP endpoint over ``hooks``; ``start()`` binds (port 0: any free port), ``close()`` stops."""

    def __init__(self, hooks: ServiceHooks, host: str = "127.0.0.1", port: int = 8080, token: str | None = None) -> None:
        self.hooks = hooks
        self.host = host
        self.requested_port = port
        self.token = token or None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        return int(self._server.server_address[1]) if self._server else self.requested_port

    def start(self) -> None:
        """Bind and serve; raises :class:`EndpointError` with what to do when the port cannot be bound."""
        handler = _make_handler(self)
        try:
            server = ThreadingHTTPServer((self.host, self.requested_port), handler)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise EndpointError(
                    f"service.http_port {self.requested_port} on {self.host} is already in use (another sorter running?); "
                    "stop the other process or choose another port in the config"
                ) from e
            raise EndpointError(f"cannot listen on {self.host}:{self.requested_port}: {e}; check service.http_host") from e
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True)
        self._thread.start()
        log.info("HTTP endpoint on http://%s:%d/ (metrics at /metrics)", self.host, self.port)

    def close(self, timeout_s: float = 1.0) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._server = None

    def authorised(self, header: str | None) -> tuple[bool, str]:
        if self.token is None:
            return False, "controls are disabled: set service.token in the config or SORTER_TOKEN in the environment"
        if not header or not header.startswith("Bearer "):
            return False, "send 'Authorization: Bearer <token>'"
        if not hmac.compare_digest(header.removeprefix("Bearer ").encode(), self.token.encode()):
            return False, "wrong token"
        return True, ""


def _make_handler(srv: StatusServer) -> type[BaseHTTPRequestHandler]:
    hooks = srv.hooks

    class Handler(BaseHTTPRequestHandler):
        server_version = "sorter"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http %s " + format, self.client_address[0], *args)

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj: Any) -> None:
            self._send(code, (json.dumps(obj, indent=1) + "\n").encode(), "application/json")

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok, reason = hooks.health()
                text = ("ok" if ok else "unhealthy") + (f": {reason}" if reason else "") + "\n"
                self._send(200 if ok else 503, text.encode(), "text/plain; charset=utf-8")
            elif path == "/status":
                self._json(200, hooks.status())
            elif path == "/metrics":
                self._send(200, prometheus_text(hooks.metrics()).encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/frame.jpg":
                jpg = hooks.frame_jpeg()
                if jpg is None:
                    self._send(404, b"no frame yet\n", "text/plain")
                else:
                    self._send(200, jpg, "image/jpeg")
            elif path in ("/", "/index.html"):
                self._send(200, _PAGE.encode(), "text/html; charset=utf-8")
            else:
                self._send(404, b"not found: try /healthz /status /metrics /frame.jpg /\n", "text/plain")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path not in ("/pause", "/resume", "/reload"):
                self._send(404, b"not found: POST /pause /resume /reload\n", "text/plain")
                return
            ok, why = srv.authorised(self.headers.get("Authorization"))
            if not ok:
                self._json(401 if srv.token else 403, {"ok": False, "error": why})
                return
            if path == "/pause":
                hooks.pause("paused over HTTP")
                self._json(200, {"ok": True, "state": hooks.status()["state"]})
            elif path == "/resume":
                hooks.resume()
                self._json(200, {"ok": True, "state": hooks.status()["state"]})
            else:
                applied, msg = hooks.reload()
                self._json(200 if applied else 409, {"ok": applied, "message": msg})

    return Handler
