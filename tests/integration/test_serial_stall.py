"""A serial port that stops taking bytes for a while is stalled, not gone.

The link talks to a real pseudo-terminal whose far end this test holds. Output on the
link's side is stopped with ``tcflow(TCOOFF)`` (the kernel then refuses the link's writes,
as a peer that does not drain its buffer makes it do) and started again: the link keeps
its port, counts the stall, replaces the heartbeats that piled up by the newest one and,
once the port takes bytes again, delivers every other frame once, in order. Only a stall
with the controller silent for ``stall_timeout_s`` counts as a lost port.
"""

from __future__ import annotations

import itertools
import os
import select
import termios
import time
from collections.abc import Callable, Iterator

import pytest

from firmware_bridge.codec import DecodedFrame, FrameDecoder
from firmware_bridge.host_session import SessionConfig
from firmware_bridge.messages import Heartbeat
from firmware_bridge.serial_link import SerialLink


@pytest.fixture
def pty_ends() -> Iterator[tuple[int, int, str]]:
    """(far end, a handle on the link's end for tcflow, the path the link opens)."""
    far, near = os.openpty()
    os.set_blocking(far, False)
    yield far, near, os.ttyname(near)
    for fd in (far, near):
        os.close(fd)


def read_frames(far: int, decoder: FrameDecoder, seconds: float) -> list[DecodedFrame]:
    frames: list[DecodedFrame] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([far], [], [], left)[0]:
            frames += [r for r in decoder.feed(os.read(far, 65536)) if isinstance(r, DecodedFrame)]
    return frames


def wait_for(pred: Callable[[], bool], timeout_s: float, what: str, link: SerialLink) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s; link stats {link.stats()}"
        time.sleep(0.01)


def test_a_stalled_port_is_kept_and_its_frames_leave_once_in_order(pty_ends: tuple[int, int, str]) -> None:
    far, near, path = pty_ends
    link = SerialLink(path, config=SessionConfig(), stall_timeout_s=30.0)  # a controller that never answers
    link.start()
    try:
        decoder = FrameDecoder()
        before = read_frames(far, decoder, 0.3)
        assert sum(isinstance(f.message, Heartbeat) for f in before) >= 5
        termios.tcflow(near, termios.TCOOFF)  # the port stops taking bytes
        wait_for(lambda: link.stats()["write_stalls"] >= 1, 2.0, "a write stall", link)
        time.sleep(0.5)  # 20 heartbeat periods
        during = link.stats()
        assert during["tx_backlog_bytes"] > 0 and during["heartbeats_coalesced"] >= 10
        assert during["port_opens"] == 1 and during["reconnects"] == 0 and during["connected"] == 1
        termios.tcflow(near, termios.TCOON)
        after = read_frames(far, decoder, 0.3)
        s = link.stats()
        assert s["tx_backlog_bytes"] == 0 and s["port_opens"] == 1 and s["reconnects"] == 0
        assert s["write_stall_ms_max"] >= 400 and s["write_call_us_max"] < 100_000
    finally:
        link.close(disarm=False)
    frames = before + after
    seqs = [f.seq for f in frames]
    assert seqs == sorted(set(seqs)), "a frame came twice or out of order"
    beats = [f.message.counter for f in frames if isinstance(f.message, Heartbeat)]
    assert beats == sorted(set(beats))
    # the heartbeats queued while stopped went out as one (the newest), not as a burst of stale ones
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert max(gaps) >= 10, gaps


def test_a_stall_with_the_controller_silent_reopens_the_port(pty_ends: tuple[int, int, str]) -> None:
    far, near, path = pty_ends
    link = SerialLink(path, config=SessionConfig(), stall_timeout_s=0.3, reconnect_min_s=0.02)
    link.start()
    try:
        decoder = FrameDecoder()
        assert read_frames(far, decoder, 0.2)
        termios.tcflow(near, termios.TCOOFF)
        wait_for(lambda: link.stats()["reconnects_stalled_silent"] >= 1, 3.0, "a reopening after a silent stall", link)
        termios.tcflow(near, termios.TCOON)
        wait_for(lambda: link.stats()["port_opens"] >= 2, 3.0, "the port reopened", link)
        s = link.stats()
        assert s["reconnects_io_error"] == 0 and s["reconnects_peer_closed"] == 0 and s["thread_errors"] == 0
        assert read_frames(far, decoder, 0.3), "nothing written after the port was reopened"
    finally:
        link.close(disarm=False)
