"""The line's side of the web server: bind the port, start the web process, feed it snapshots, carry out its requests.

Two threads, both off the loop: the publisher builds a snapshot (status, metrics,
console data) twice a second or at once when the state changes, and hands the
latest frame with what to draw on it to the web process (which draws and encodes
it) at most ``service.view_fps`` times per second, only while someone is looking;
the control thread carries out pause, resume and reload. The web
process is restarted if it dies.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from sorter.runtime.web.listen import EndpointError, bind_listener
from sorter.runtime.web.settings import WebSettings

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from sorter.runtime.service import LineService

log = logging.getLogger(__name__)
url_log = logging.getLogger(__name__ + ".url")

SNAPSHOT_PERIOD_S = 0.5
MIN_SNAPSHOT_GAP_S = 0.05
WATCHED_FOR_S = 2.0  # an image request keeps the encoder going this long
RESTART_GAP_S = 5.0
READY_WAIT_S = 20.0  # start-up waits this long at most for the web process to serve (imports take 1-5 s on 2 busy cores)


class WebBridge:
    """The HTTP endpoint of a running line (``start`` binds and starts serving; ``close`` stops it).

    Args:
        service: the line's service state.
        host: address to listen on.
        port: port (0: any free port; see :attr:`port` after ``start``).
        settings: tokens and limits.
        in_process: serve from a thread of this process instead of a separate process.
    """

    def __init__(self, service: LineService, host: str, port: int, settings: WebSettings, in_process: bool = False) -> None:
        self.service = service
        self.host = host
        self.requested_port = port
        self.settings = settings
        self.in_process = in_process
        self.restarts = 0
        self.frames_published = 0  # frames handed to the web process (each drawn and encoded once, for every client)
        self._ctx = multiprocessing.get_context("spawn")
        self._sock: Any = None
        self._conn: Connection | None = None
        self._proc: BaseProcess | None = None
        self._thread: threading.Thread | None = None
        self._t_wanted = 0.0  # monotonic time of the web process's last "someone looks at the image"
        self._send_lock = threading.Lock()
        self._snap_lock = threading.Lock()
        self._poke = threading.Event()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._t_started = 0.0

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        return int(self._sock.getsockname()[1]) if self._sock is not None else self.requested_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # --- life cycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Bind (address reuse, a normal backlog) and start serving.

        Raises:
            EndpointError: the port is in use or the address cannot be bound.
        """
        import importlib.util

        missing = [m for m in ("fastapi", "uvicorn", "prometheus_client") if importlib.util.find_spec(m) is None]
        if missing:
            raise EndpointError(f"the HTTP endpoint needs {', '.join(missing)}: pip install -e . (or unset service.http_port)")
        self._sock = bind_listener(self.host, self.requested_port)
        self._start_server()
        self.service.on_change = self._poke.set
        for name, target in (("web-publish", self._publish_loop), ("web-control", self._control_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._workers.append(t)
        t0 = time.monotonic()
        while not self._ready.wait(0.1):
            if self._proc is not None and not self._proc.is_alive():
                code = self._proc.exitcode
                self.close()
                raise EndpointError(f"the web server process ended at start-up (exit code {code}); its error is above")
            if time.monotonic() - t0 > READY_WAIT_S:
                log.warning("the web process is not serving after %.0f s; requests wait until it does", READY_WAIT_S)
                break
        log.debug("web process serving after %.2f s", time.monotonic() - t0)
        if url_log.getEffectiveLevel() > logging.INFO:
            url_log.setLevel(logging.INFO)  # the console's address is worth a line even without -v
        where = "a thread of this process" if self.in_process else "its own process"
        guard = "; the page needs the token" if self.settings.view_token else ""
        url_log.info("operator console on %s (metrics at %smetrics, API at %sopenapi.json; served from %s%s)",
                     self.url, self.url, self.url, where, guard)

    def _start_server(self) -> None:
        from sorter.runtime.web import server

        here, there = self._ctx.Pipe(duplex=True)
        self._conn = here
        args = (self._sock, there, self.settings)
        if self.in_process:
            self._thread = threading.Thread(target=server.run_thread, args=args, name="web-server", daemon=True)
            self._thread.start()
            return
        proc = self._ctx.Process(target=server.run_process, args=args, name="sorter-web", daemon=True)
        proc.start()
        there.close()
        self._proc = proc
        self._t_started = time.monotonic()

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the web server (open streams end, connections are closed) and the threads; never hangs."""
        if self._sock is None:
            return
        self._stop.set()
        self._poke.set()
        self.service.on_change = None
        self._send(("stop",))
        if self._proc is not None:
            self._proc.join(timeout_s)
            if self._proc.is_alive():
                log.warning("the web process did not stop within %.1f s: terminating it", timeout_s)
                self._proc.terminate()
                self._proc.join(1.0)
                if self._proc.is_alive():
                    self._proc.kill()
                    self._proc.join(1.0)
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._conn is not None:
            self._conn.close()
        for t in self._workers:
            t.join(timeout_s)
        self._sock.close()
        self._sock = None

    # --- pipe ---------------------------------------------------------------------------------------------------------
    def _send(self, msg: tuple[Any, ...]) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            with self._send_lock:
                conn.send(msg)
            return True
        except (OSError, ValueError):  # the web process is gone (restarted by the publisher) or the pipe is closed
            return False

    def _demanded(self, now: float) -> bool:
        return now - self._t_wanted < WATCHED_FOR_S

    # --- publisher --------------------------------------------------------------------------------------------------
    def _publish_loop(self) -> None:
        frame_period = 1.0 / self.settings.view_fps
        next_snap = 0.0
        next_frame = 0.0
        last_snap = 0.0
        last_index: int | None = None
        while not self._stop.is_set():
            now = time.monotonic()
            due = min(next_snap, next_frame) if self._demanded(now) else next_snap
            if due > now:
                self._poke.wait(min(due - now, SNAPSHOT_PERIOD_S))
            if self._stop.is_set():
                break
            poked = self._poke.is_set()
            self._poke.clear()
            now = time.monotonic()
            try:
                self._supervise(now)
                if (poked and now - last_snap >= MIN_SNAPSHOT_GAP_S) or now >= next_snap:
                    self.publish_snapshot()
                    last_snap, next_snap = now, now + SNAPSHOT_PERIOD_S
                if self._demanded(now) and now >= next_frame:
                    next_frame = now + frame_period
                    last_index = self._publish_frame(last_index)
            except Exception:  # a bug here must not end the live view silently; the loop is not affected
                log.exception("building the web snapshot failed")
                self._stop.wait(1.0)

    def publish_snapshot(self) -> None:
        """Send the current status, metrics and console data to the web server."""
        svc = self.service
        with self._snap_lock:
            m = svc.metrics()
            status = svc.status(m)
            status["http"] = {"served_from": "thread" if self.in_process else "process", "restarts": self.restarts,
                              "frames_published": self.frames_published}
            console = svc.live.console(status, svc.actions(), time.monotonic())
            snap = {"status": status, "console": console, "metrics": m.as_dict(), "health": svc.health()}
        self._send(("snap", snap))

    def _publish_frame(self, last_index: int | None) -> int | None:
        svc = self.service
        last = svc.live.last
        if last is None or last.frame.frame_index == last_index:
            return last_index  # no new frame: nothing to encode (the page shows the frame's age)
        banner = f"{svc.state} | frame {last.frame.frame_index} | {svc.fps:.1f} fps | {last.speed_mm_s:.0f} mm/s"
        out = svc.live.frame_parts(banner, svc.actions())
        if out is None:
            return last_index
        image, items, index = out
        t_cycle = svc.live.t_last_cycle_s or time.monotonic()
        meta = {"index": index, "t_cycle_s": t_cycle, "shape": image.shape, "items": items}
        conn = self._conn
        if conn is None:
            return last_index
        try:
            with self._send_lock:  # the pixels follow their header as one raw message: the kernel copies them, nothing else
                conn.send(("raw", meta))
                conn.send_bytes(np.ascontiguousarray(image).data.cast("B"))
        except (OSError, ValueError):
            return last_index
        self.frames_published += 1
        return index

    def _supervise(self, now: float) -> None:
        proc = self._proc
        if proc is None or proc.is_alive() or self._stop.is_set() or now - self._t_started < RESTART_GAP_S:
            return
        self.restarts += 1
        log.error("the web process ended (exit code %s): restarting it (restart %d)", proc.exitcode, self.restarts)
        if self._conn is not None:
            self._conn.close()
        self._start_server()

    # --- control ------------------------------------------------------------------------------------------------------
    def _control_loop(self) -> None:
        while not self._stop.is_set():
            conn = self._conn
            try:
                if conn is None or not conn.poll(0.2):
                    continue
                msg = conn.recv()
            except (EOFError, OSError, ValueError):  # the web process went away: wait for its restart
                self._stop.wait(0.2)
                continue
            if msg[0] == "want":
                self._t_wanted = time.monotonic()
                self._poke.set()
                continue
            if msg[0] == "ready":
                self._ready.set()
                self._poke.set()  # a first snapshot at once
                continue
            kind, req_id = msg[0], msg[1]
            reply = self._carry_out(kind)
            self.publish_snapshot()  # before the reply: whoever reads /status next sees the new state
            self._send(("reply", req_id, reply))

    def _carry_out(self, kind: str) -> dict[str, Any]:
        svc = self.service
        if kind == "pause":
            svc.pause("paused over HTTP")
            return {"ok": True, "state": svc.state}
        if kind == "resume":
            svc.resume()
            return {"ok": True, "state": svc.state}
        if kind == "reload":
            applied, message = svc.reload()
            return {"ok": applied, "message": message, "code": 200 if applied else 409}
        if kind == "rollback":
            done, message = svc.rollback()
            return {"ok": done, "message": message, "code": 200 if done else 409}
        return {"ok": False, "error": f"unknown request {kind!r}", "code": 400}
