"""The endpoint under clients that misbehave: silent or slow connections, disconnects mid-answer, more clients than
allowed, and a shutdown with clients connected (once an abort of the whole process, exit 134)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from webtools import Running, request, wait_for


def _hammer(port: int, path: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """A keep-alive client asking for ``path`` as fast as it is answered until ``stop``."""
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while not stop.is_set():
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                counts[str(r.status)] = counts.get(str(r.status), 0) + 1
        except (OSError, http.client.HTTPException):
            counts["disconnected"] = counts.get("disconnected", 0) + 1
        finally:
            conn.close()


def _open_stream(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 200") and b"multipart/x-mixed-replace" in head, head[:200]
    return s


def _clean(err: str) -> None:
    assert "Traceback" not in err, err[-3000:]
    assert "terminate called" not in err and "Exception in ASGI" not in err, err[-3000:]


def test_shutdown_with_clients_connected_is_clean(start_line: Callable[..., Running]) -> None:
    run = start_line()
    stop = threading.Event()
    counts: dict[str, int] = {}
    threads = [threading.Thread(target=_hammer, args=(run.port, p, stop, counts), daemon=True)
               for p in ("/frame.jpg", "/frame.jpg", "/metrics", "/status", "/api/console")]
    for t in threads:
        t.start()
    streams = [_open_stream(run.port) for _ in range(3)]
    idle = [socket.create_connection(("127.0.0.1", run.port)) for _ in range(3)]  # connected, nothing sent
    wait_for(lambda: counts.get("200", 0) > 50, 60.0, "answers to the hammering clients")
    for s in streams:  # each stream has delivered frames
        assert b"--frame" in s.recv(1 << 20)
    rc = run.stop()
    stop.set()
    for t in threads:
        t.join(15)
    assert rc == 0, run.stderr[-3000:]
    _clean(run.stderr)
    for s in streams + idle:  # every connection was closed by the server, none left hanging
        s.settimeout(10)
        try:
            while s.recv(1 << 20):
                pass
        except ConnectionResetError:
            pass
        s.close()
    summary = json.loads(run.summary.read_text())
    assert summary["frames"] > 0 and summary["commands_executed_late"] == 0


def test_silent_and_slow_connections_are_closed_and_disconnects_are_quiet(start_line: Callable[..., Running]) -> None:
    run = start_line(service={"http_timeout_s": 1.0})
    silent = socket.create_connection(("127.0.0.1", run.port))
    slow = socket.create_connection(("127.0.0.1", run.port))
    slow.sendall(b"GET /status HTTP/1.1\r\n")  # a request head that never ends
    for s in (silent, slow):
        s.settimeout(30)
        assert s.recv(100) == b""  # closed by the server (its read timeout), not left open forever
        s.close()
    # clients that go away mid-answer: a stream after one frame, an image request cut before the body is read
    for _ in range(5):
        s = _open_stream(run.port)
        s.close()
        c = socket.create_connection(("127.0.0.1", run.port))
        c.sendall(b"GET /frame.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
        c.close()
    assert request(run.port, "/healthz")[0] == 200  # still serving
    assert run.stop() == 0
    _clean(run.stderr)


def test_connections_beyond_the_limit_get_503(start_line: Callable[..., Running]) -> None:
    run = start_line(service={"http_max_connections": 8})
    streams = [_open_stream(run.port) for _ in range(7)]  # 7 streams and the next connection make 8
    try:
        code, _headers, _ = request(run.port, "/status")
        assert code == 503  # bounded: the server refuses work beyond its limit instead of piling it up
    finally:
        for s in streams:
            s.close()
    wait_for(lambda: request(run.port, "/status")[0] == 200, 30.0, "serving again once the streams closed")
    assert run.stop() == 0
    _clean(run.stderr)


def test_the_image_is_encoded_once_and_shared(start_line: Callable[..., Running]) -> None:
    run = start_line(service={"view_fps": 2.0})
    code, headers, jpg = request(run.port, "/frame.jpg")
    assert code == 200 and jpg[:2] == b"\xff\xd8" and headers["etag"] == f'"{headers["x-frame-index"]}"'
    before = run.status()["http"]["frames_published"]
    results: list[tuple[int, dict[str, str], bytes]] = []

    def get() -> None:
        results.append(request(run.port, "/frame.jpg"))

    t0 = time.monotonic()
    threads = [threading.Thread(target=get) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - t0
    assert len(results) == 40 and all(code == 200 for code, _h, _b in results)
    indexes = {h["x-frame-index"] for _c, h, _b in results}
    assert len(indexes) < 40  # clients got the same shared image
    time.sleep(1.0)  # let a snapshot carry the count
    published = run.status()["http"]["frames_published"] - before
    assert published <= 2.0 * (elapsed + 1.5) + 2, (published, elapsed)  # at most view_fps, not one per request
    same = request(run.port, "/frame.jpg", headers={"If-None-Match": headers["etag"]})
    assert same[0] in (200, 304)
    assert run.stop() == 0


def test_the_view_can_require_the_token(start_line: Callable[..., Running]) -> None:
    from webtools import TOKEN

    run = start_line(service={"token_for_view": True})
    for path in ("/frame.jpg", "/stream.mjpg", "/api/console"):
        assert request(run.port, path)[0] == 401, path
    code, _h, page = request(run.port, "/")
    assert code == 401 and b'action="/login"' in page  # a login form, not a bare error
    assert request(run.port, "/frame.jpg", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert request(run.port, f"/frame.jpg?token={TOKEN}")[0] == 200
    assert request(run.port, "/frame.jpg?token=nope")[0] == 401
    code, _h, _b = request(run.port, "/login", "POST", {"Content-Type": "application/x-www-form-urlencoded"}, b"token=nope")
    assert code == 401
    code, headers, _b = request(run.port, "/login", "POST", {"Content-Type": "application/x-www-form-urlencoded"},
                                f"token={TOKEN}".encode())
    assert code == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"].split(";")[0]
    assert TOKEN not in cookie and "httponly" in headers["set-cookie"].lower()
    code, _h, body = request(run.port, "/api/console", headers={"Cookie": cookie})
    assert code == 200 and json.loads(body)["status"]["state"] in ("running", "initialising", "degraded")
    assert request(run.port, "/", headers={"Cookie": cookie})[0] == 200
    assert request(run.port, "/pause", "POST", {"Cookie": cookie})[0] == 401  # a cookie never carries a control
    assert request(run.port, "/status")[0] == 200 and request(run.port, "/metrics")[0] == 200  # monitoring stays open
    assert run.stop() == 0


def test_openapi_describes_the_control_api(start_line: Callable[..., Running]) -> None:
    run = start_line()
    code, _h, body = request(run.port, "/openapi.json")
    assert code == 200
    spec: dict[str, Any] = json.loads(body)
    paths = spec["paths"]
    for p in ("/pause", "/resume", "/reload"):
        assert "post" in paths[p] and paths[p]["post"]["security"], p
        assert "ControlReply" in json.dumps(paths[p]["post"]["responses"]["200"])
    for p in ("/healthz", "/status", "/metrics", "/frame.jpg", "/stream.mjpg"):
        assert "get" in paths[p], p
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert run.stop() == 0
