"""Frames waiting to go out on the serial port, in order (pure logic: no port, no clock).

A write to a serial port can be refused for a while without the port being gone:
the peer (a pseudo-terminal's other end, a USB-serial adapter's buffer) has not
drained what came before. ``SerialLink`` writes without blocking; what the port did
not take waits here, frame by frame, and goes out first at the next write. Frames
keep their order and none is ever sent twice. One exception to "every byte":
a HEARTBEAT only says "the host is alive now", so a newer one replaces an older
one that has not started out yet (the controller's watchdog needs the newest only).
"""

from __future__ import annotations

from collections import deque

from firmware_bridge.cobs import CobsError, cobs_decode
from firmware_bridge.messages import MsgType

DELIMITER = b"\x00"


def is_heartbeat(frame: bytes) -> bool:
    """True for one whole wire frame (COBS block and its 0x00 delimiter) carrying a HEARTBEAT."""
    try:
        body = cobs_decode(frame.rstrip(DELIMITER))
    except CobsError:
        return False
    return bool(body) and body[0] == MsgType.HEARTBEAT


class TxBacklog:
    """Bytes accepted for sending and not yet taken by the port.

    ``add`` takes whole frames (what ``HostSession.poll`` returns); ``pending`` says what to
    write next; ``written(n, now_s)`` drops the ``n`` bytes the port took (possibly part of a
    frame: the rest of that frame goes first next time, so a frame is never cut by another).

    It also keeps the stall figures: a stall begins when the port leaves bytes behind and ends
    when the backlog is empty again (``stall_since_s``, ``stalls``, ``stall_s_total``, ``stall_s_max``).
    """

    def __init__(self) -> None:
        self._frames: deque[bytes] = deque()
        self._offset = 0  # bytes of the first frame already written
        self._left = 0  # bytes still to write (kept as one int: other threads may read it any time)
        self.heartbeats_coalesced = 0
        self.stall_since_s: float | None = None  # when the port first left bytes behind (None: not stalled)
        self.stalls = 0
        self.stall_s_total = 0.0
        self.stall_s_max = 0.0

    def __len__(self) -> int:
        """Bytes still to write."""
        return self._left

    def __bool__(self) -> bool:
        return bool(self._frames)

    def add(self, data: bytes) -> None:
        """Queue whole frames (each ends with the 0x00 delimiter); a HEARTBEAT replaces unstarted older ones.

        Raises:
            ValueError: ``data`` does not end with a frame delimiter (a partial frame would corrupt the stream).
        """
        if not data:
            return
        if not data.endswith(DELIMITER):
            raise ValueError(f"TxBacklog.add: {len(data)} bytes do not end with the 0x00 frame delimiter; pass whole frames")
        start = 0
        while start < len(data):
            end = data.index(DELIMITER, start) + 1
            frame = data[start:end]
            start = end
            if self._frames and len(frame) > 1 and is_heartbeat(frame):
                self._drop_unstarted_heartbeats()
            self._frames.append(frame)
            self._left += len(frame)

    def pending(self) -> bytes:
        """Everything still to write, in order (the rest of a partly written frame first)."""
        if not self._frames:
            return b""
        if len(self._frames) == 1:
            return self._frames[0][self._offset :]
        return b"".join(self._frames)[self._offset :]

    def written(self, n_bytes: int, now_s: float) -> None:
        """The port took the first ``n_bytes`` of ``pending()`` at ``now_s`` (monotonic seconds)."""
        if n_bytes < 0 or n_bytes > len(self):
            raise ValueError(f"TxBacklog.written: {n_bytes} bytes written, but {len(self)} were pending")
        self._left -= n_bytes
        n = n_bytes + self._offset
        while self._frames and n >= len(self._frames[0]):
            n -= len(self._frames.popleft())
        self._offset = n
        if self._frames and self.stall_since_s is None:
            self.stall_since_s = now_s
            self.stalls += 1
        elif not self._frames:
            self._end_stall(now_s)

    def clear(self, now_s: float) -> None:
        """Forget everything (the port is gone: the session resends what matters after reconnecting)."""
        self._frames.clear()
        self._offset = 0
        self._left = 0
        self._end_stall(now_s)

    def _end_stall(self, now_s: float) -> None:
        if self.stall_since_s is not None:
            stalled_s = now_s - self.stall_since_s
            self.stall_s_total += stalled_s
            self.stall_s_max = max(self.stall_s_max, stalled_s)
            self.stall_since_s = None

    def _drop_unstarted_heartbeats(self) -> None:
        keep: deque[bytes] = deque()
        for i, frame in enumerate(self._frames):
            started = i == 0 and self._offset > 0
            if not started and is_heartbeat(frame):
                self.heartbeats_coalesced += 1
                self._left -= len(frame)
                continue
            keep.append(frame)
        self._frames = keep
