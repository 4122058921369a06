"""The HTTP API and console, as an ASGI app (FastAPI) answering from the :class:`~sorter.runtime.web.hub.Hub`.

Every answer is a cached snapshot (JSON bytes, Prometheus text per snapshot,
the shared JPEG), so a request costs the web process a few dictionary reads and
never reaches the line's loop; only pause, resume and reload are sent to it.
Every handler is a coroutine that never blocks: all run on the event loop, none
in a thread pool.
The OpenAPI description is served at ``/openapi.json``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Security
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from sorter.runtime.web.auth import VIEW_COOKIE, control_allowed, view_allowed, view_cookie_value
from sorter.runtime.web.hub import SNAPSHOT_STALE_S, Hub
from sorter.runtime.web.metrics import registry_for
from sorter.runtime.web.settings import WebSettings

_STATIC = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}
_NO_STORE = {"Cache-Control": "no-store"}
FIRST_FRAME_WAIT_S = 3.0


class ControlReply(BaseModel):
    """Answer of ``POST /pause``, ``/resume``, ``/reload`` and ``/rollback``."""

    ok: bool
    state: str | None = None
    message: str | None = None
    error: str | None = None


def _asset(name: str) -> bytes:
    return (resources.files("sorter.runtime.web") / "static" / name).read_bytes()


def _login_page(why: str) -> bytes:
    return _asset("login.html").replace(b"{{why}}", why.encode())


def create_app(hub: Hub, settings: WebSettings) -> FastAPI:
    """The app over ``hub``; ``settings`` carries the tokens and the limits."""
    from sorter import __version__

    app = FastAPI(
        title=f"sorter: line {settings.line_name}", version=__version__, docs_url=None, redoc_url=None,
        description="Health, status, metrics and the live console of a running sorting line; "
                    "pause, resume and reload need `Authorization: Bearer <service.token>`.",
    )
    # one request loads the page: its style and script inline (a busy web process answers one request sooner than three)
    page = (_asset("index.html")
            .replace(b'<link rel="stylesheet" href="/static/console.css">', b"<style>" + _asset("console.css") + b"</style>")
            .replace(b'<script src="/static/console.js"></script>', b"<script>" + _asset("console.js") + b"</script>"))
    static = {name: _asset(name) for name in _STATIC}
    registry = registry_for(lambda: hub.metrics, settings.line_pid)
    metrics_cache: dict[str, Any] = {"version": -1, "body": b""}
    streams = {"open": 0}
    bearer_doc = HTTPBearer(auto_error=False, description="service.token (or SORTER_TOKEN)")

    def may_view(request: Request) -> bool:
        return view_allowed(settings.token, settings.view_token, request.headers.get("authorization"),
                            request.query_params, request.cookies)

    def refused() -> Response:
        return Response("the token is needed: send 'Authorization: Bearer <token>', ?token=<token>, or log in at /\n",
                        401, media_type="text/plain", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/healthz", response_class=Response, summary="200 when running or paused, 503 with the reason otherwise",
             responses={200: {"content": {"text/plain": {}}}, 503: {"content": {"text/plain": {}}}})
    async def healthz() -> Response:
        ok, reason = hub.health
        age = hub.snapshot_age_s()
        if age is None:
            ok, reason = False, "waiting for the line to start"
        elif age > SNAPSHOT_STALE_S:
            ok, reason = False, f"no news from the line's process for {age:.0f} s"
        text = ("ok" if ok else "unhealthy") + (f": {reason}" if reason else "") + "\n"
        return Response(text, 200 if ok else 503, media_type="text/plain", headers=_NO_STORE)

    @app.get("/status", response_class=Response, summary="state, reason, counters, latencies, faults, score (JSON)",
             responses={200: {"content": {"application/json": {}}}})
    async def status() -> Response:
        return Response(hub.status_json, media_type="application/json", headers=_NO_STORE)

    @app.get("/metrics", response_class=Response, summary="Prometheus metrics of the line",
             responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        if metrics_cache["version"] != hub.snapshot_version:  # rendered once per snapshot, whatever the scrape rate
            metrics_cache["body"] = generate_latest(registry)
            metrics_cache["version"] = hub.snapshot_version
        return Response(metrics_cache["body"], media_type=CONTENT_TYPE_LATEST, headers=_NO_STORE)

    @app.get("/frame.jpg", response_class=Response, summary="the latest annotated frame (shared, a few per second)",
             responses={200: {"content": {"image/jpeg": {}}}, 304: {}, 401: {}, 503: {}})
    async def frame_jpg(request: Request) -> Response:
        if not may_view(request):
            return refused()
        hub.want_frame()
        f = hub.frame
        if f is None:  # nobody has looked yet: the line sends one, the web process draws and encodes it
            f = await hub.next_frame(0, FIRST_FRAME_WAIT_S)
        elif time.monotonic() - f.t_encoded_s > 2.0 / settings.view_fps:  # nobody looked lately: a fresh one, if any
            f = await hub.next_frame(f.version, 1.0) or hub.frame
        if f is None:
            return Response("no frame yet\n", 503, media_type="text/plain", headers={"Retry-After": "1", **_NO_STORE})
        age_ms = max(0, round((time.monotonic() - f.t_cycle_s) * 1000))
        headers = {"ETag": f'"{f.index}"', "X-Frame-Index": str(f.index), "X-Frame-Age-Ms": str(age_ms), **_NO_STORE}
        if request.headers.get("if-none-match") == f'"{f.index}"':
            return Response(status_code=304, headers=headers)
        return Response(f.jpeg, media_type="image/jpeg", headers=headers)

    @app.get("/stream.mjpg", summary="the annotated frames as an MJPEG stream (multipart/x-mixed-replace)",
             responses={200: {"content": {"multipart/x-mixed-replace": {}}}, 401: {}, 503: {}})
    async def stream(request: Request) -> Response:
        if not may_view(request):
            return refused()
        if streams["open"] >= settings.max_streams:
            return Response(f"too many streams open ({settings.max_streams}); use /frame.jpg\n", 503,
                            media_type="text/plain", headers={"Retry-After": "5"})
        streams["open"] += 1

        async def parts() -> AsyncIterator[bytes]:
            version = 0
            try:
                while not hub.closing:
                    hub.want_frame()
                    f = await hub.next_frame(version, 2.0)
                    if f is None:
                        continue
                    version = f.version
                    yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(f.jpeg)) + f.jpeg + b"\r\n"
            finally:
                streams["open"] -= 1

        return StreamingResponse(parts(), media_type="multipart/x-mixed-replace; boundary=frame", headers=_NO_STORE)

    @app.get("/api/console", response_class=Response, summary="everything the console draws (JSON)",
             responses={200: {"content": {"application/json": {}}}, 401: {}})
    async def console(request: Request) -> Response:
        if not may_view(request):
            return refused()
        return Response(hub.console_json, media_type="application/json", headers=_NO_STORE)

    @app.get("/", response_class=HTMLResponse, summary="the operator console")
    async def index(request: Request) -> Response:
        if not may_view(request):
            return HTMLResponse(_login_page(""), 401)
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @app.post("/login", response_class=HTMLResponse, summary="log the browser in with the token (form field 'token')")
    async def login(request: Request) -> Response:
        given = parse_qs((await request.body()).decode("utf-8", "replace")).get("token", [""])[0]
        if settings.token is None or not view_allowed(settings.token, True, f"Bearer {given}", {}, {}):
            return HTMLResponse(_login_page("wrong token"), 401)
        resp = RedirectResponse("/", 303)
        resp.set_cookie(VIEW_COOKIE, view_cookie_value(settings.token), httponly=True, samesite="strict")
        return resp

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in static:
            return Response("not found\n", 404, media_type="text/plain")
        return Response(static[name], media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})

    async def control(request: Request, kind: str) -> JSONResponse:
        ok, code, why = control_allowed(settings.token, request.headers.get("authorization"))
        if not ok:
            return JSONResponse(ControlReply(ok=False, error=why).model_dump(exclude_none=True), code)
        reply = await hub.request(kind, timeout_s=5.0)
        if reply is None:
            return JSONResponse(ControlReply(ok=False, error="the line did not answer within 5 s").model_dump(exclude_none=True),
                                504)
        code = int(reply.pop("code", 200))
        return JSONResponse(ControlReply(**reply).model_dump(exclude_none=True), code)

    ctl = {"model": ControlReply}

    @app.post("/pause", response_model=ControlReply, responses={401: ctl, 403: ctl, 504: ctl},
              summary="stop actuation (decisions are still logged); the line keeps running")
    async def pause(request: Request, _auth: Any = Security(bearer_doc)) -> JSONResponse:
        return await control(request, "pause")

    @app.post("/resume", response_model=ControlReply, responses={401: ctl, 403: ctl, 504: ctl}, summary="resume actuation")
    async def resume(request: Request, _auth: Any = Security(bearer_doc)) -> JSONResponse:
        return await control(request, "resume")

    @app.post("/reload", response_model=ControlReply, responses={401: ctl, 403: ctl, 409: ctl, 504: ctl},
              summary="re-read the config files; only safe keys (policy.*, detector.min_score) are applied")
    async def reload(request: Request, _auth: Any = Security(bearer_doc)) -> JSONResponse:
        return await control(request, "reload")

    @app.post("/rollback", response_model=ControlReply, responses={401: ctl, 403: ctl, 409: ctl, 504: ctl},
              summary="swap the previous detector model back in (it is still loaded: no gap in detection)")
    async def rollback(request: Request, _auth: Any = Security(bearer_doc)) -> JSONResponse:
        return await control(request, "rollback")

    return app
