"""The web process's copy of the line: the latest snapshot and image received from the line, and its control requests.

A reader thread takes messages off the pipe from the line's process and swaps
the cached answers (JSON bytes, the JPEG) in whole, so request handlers on the
event loop only read attributes; control requests go the other way and wait
for their reply on a future.

Messages, line -> web: ``("snap", dict)``, ``("raw", meta)`` followed by the frame's pixels as one bytes message,
``("reply", id, dict)``, ``("stop",)``;
web -> line: ``("pause" | "resume" | "reload" | "rollback", id)``, ``("want",)`` (someone is looking at the image),
``("ready",)`` (serving).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

#: Without a snapshot for this long the line is taken to be hung: ``/healthz`` answers 503.
SNAPSHOT_STALE_S = 5.0
WANT_EVERY_S = 0.5


@dataclass(frozen=True, slots=True)
class Frame:
    """The latest annotated image: JPEG bytes, frame index, when the line processed and encoded it (monotonic s)."""

    jpeg: bytes
    index: int
    t_cycle_s: float
    t_encoded_s: float
    version: int


class Hub:
    """What request handlers read, refreshed by the reader thread.

    Args:
        conn: the duplex pipe to the line's process.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._t_want_sent = 0.0
        self._send_lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.status_json = b'{"state": "initialising", "reason": "waiting for the line"}\n'
        self.console_json = b'{"status": {"state": "initialising", "reason": "waiting for the line"}}\n'
        self.metrics: dict[str, Any] | None = None
        self.health: tuple[bool, str] = (False, "initialising")
        self.t_snapshot_s: float | None = None
        self.snapshot_version = 0
        self.frame: Frame | None = None
        self.closing = False
        self._frame_event: asyncio.Event | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self.on_exit: Callable[[], None] | None = None

    # --- reader thread --------------------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> threading.Thread:
        """Bind to the running event loop and start reading the pipe."""
        self.loop = loop
        self._frame_event = asyncio.Event()
        t = threading.Thread(target=self._read, name="web-reader", daemon=True)
        t.start()
        return t

    def _read(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):  # the line's process is gone
                break
            kind = msg[0]
            if kind == "snap":
                self._on_snapshot(msg[1])
            elif kind == "raw":
                try:
                    pixels = self._conn.recv_bytes()
                except (EOFError, OSError):
                    break
                self._on_raw(msg[1], pixels)
            elif kind == "reply":
                self._call(self._resolve, msg[1], msg[2])
            elif kind == "stop":
                break
        self.exit()

    def _on_raw(self, meta: dict[str, Any], pixels: bytes) -> None:
        """Draw the overlay on the line's frame and encode the one JPEG every client gets (here, not in the line)."""
        import numpy as np

        from sorter.runtime.overlay import draw_items, encode_jpeg

        image = np.frombuffer(pixels, np.uint8).reshape(meta["shape"])
        jpeg = encode_jpeg(draw_items(image, meta["items"]))
        version = self.frame.version + 1 if self.frame is not None else 1
        self.frame = Frame(jpeg, int(meta["index"]), float(meta["t_cycle_s"]), time.monotonic(), version)
        self._call(self._wake_frames)

    def _on_snapshot(self, snap: dict[str, Any]) -> None:
        self.status_json = (json.dumps(snap["status"], indent=1) + "\n").encode()
        self.console_json = json.dumps(snap["console"], separators=(",", ":")).encode()
        self.metrics = snap["metrics"]
        ok, reason = snap["health"]
        self.health = (bool(ok), str(reason))
        self.t_snapshot_s = time.monotonic()
        self.snapshot_version += 1

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(fn, *args)

    def exit(self) -> None:
        """Stop serving: streams end, the server shuts down (asked by the line, or the line is gone)."""
        self.closing = True
        self._call(self._wake_frames)
        if self.on_exit is not None:
            self.on_exit()

    # --- event loop -------------------------------------------------------------------------------------------------
    def _wake_frames(self) -> None:
        ev, self._frame_event = self._frame_event, asyncio.Event()
        if ev is not None:
            ev.set()

    def _resolve(self, req_id: int, reply: dict[str, Any]) -> None:
        fut = self._pending.pop(req_id, None)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    def want_frame(self) -> None:
        """A client wants the image: tell the line (at most twice a second), which encodes only while someone looks."""
        now = time.monotonic()
        if now - self._t_want_sent >= WANT_EVERY_S:
            self._t_want_sent = now
            self.send(("want",))

    def send(self, msg: tuple[Any, ...]) -> bool:
        """Send ``msg`` to the line; False when the line is gone."""
        try:
            with self._send_lock:
                self._conn.send(msg)
            return True
        except (OSError, ValueError):  # the line's process is gone: the reader thread ends the server
            return False

    async def next_frame(self, after_version: int, timeout_s: float) -> Frame | None:
        """The first frame newer than ``after_version`` (None on timeout or shutdown)."""
        t_end = time.monotonic() + timeout_s
        while not self.closing:
            f = self.frame
            if f is not None and f.version > after_version:
                return f
            ev = self._frame_event
            left = t_end - time.monotonic()
            if ev is None or left <= 0:
                return None
            try:
                await asyncio.wait_for(ev.wait(), left)
            except TimeoutError:
                return None
        return None

    async def request(self, kind: str, timeout_s: float = 5.0) -> dict[str, Any] | None:
        """Ask the line to ``pause``/``resume``/``reload``/``rollback``; its reply, or None if it did not answer in time."""
        assert self.loop is not None
        req_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self._pending[req_id] = fut
        try:
            if not self.send((kind, req_id)):
                return None
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._pending.pop(req_id, None)

    def snapshot_age_s(self) -> float | None:
        return None if self.t_snapshot_s is None else time.monotonic() - self.t_snapshot_s
