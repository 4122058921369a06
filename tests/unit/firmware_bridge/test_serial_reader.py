"""The port reader on real pipes: what it reads is queued in order with its port's generation, a closed port
is reported once with its reason, and a port handed over replaces the old one, whose descriptor it closes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from firmware_bridge.serial_reader import PortReader, Received, WakePipe


def wait_for(pred: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


@pytest.fixture
def reader() -> Iterator[tuple[PortReader, threading.Event]]:
    woken = threading.Event()
    r = PortReader("test-reader", woken.set, time.monotonic_ns)
    r.start()
    yield r, woken
    r.stop(5.0)


def pipe() -> tuple[int, int]:
    rd, wr = os.pipe()
    os.set_blocking(rd, False)
    return rd, wr


def data_of(items: list[Received], generation: int) -> bytes:
    return b"".join(i.data for i in items if i.generation == generation and i.lost is None)


def test_bytes_arrive_in_order_stamped_with_the_generation(reader: tuple[PortReader, threading.Event]) -> None:
    r, woken = reader
    rd, wr = pipe()
    r.attach(rd, 1)
    os.close(rd)  # the reader has its own duplicate
    t0 = time.monotonic_ns()
    for chunk in (b"\x01\x02", b"\x03", b"\x04\x05\x06"):
        os.write(wr, chunk)
    assert wait_for(lambda: len(data_of(list(r.received), 1)) == 6)
    assert woken.is_set()
    items = list(r.received)
    assert data_of(items, 1) == b"\x01\x02\x03\x04\x05\x06"
    assert all(i.t_ns >= t0 for i in items) and r.holding()
    os.close(wr)


def test_a_port_closed_by_the_other_end_is_reported_once(reader: tuple[PortReader, threading.Event]) -> None:
    r, _ = reader
    rd, wr = pipe()
    r.attach(rd, 7)
    os.close(rd)
    os.write(wr, b"\x09")
    os.close(wr)  # end of file: the other end hung up
    assert wait_for(lambda: any(i.lost is not None for i in r.received))
    assert wait_for(lambda: not r.holding())  # it closed its descriptor and waits for the next port
    time.sleep(0.05)
    lost = [i for i in r.received if i.lost is not None]
    assert len(lost) == 1 and lost[0].generation == 7 and lost[0].lost is not None
    assert lost[0].lost.reason == "peer_closed"
    assert data_of(list(r.received), 7) == b"\x09"


def test_a_new_port_replaces_the_old_and_detach_lets_go(reader: tuple[PortReader, threading.Event]) -> None:
    r, _ = reader
    old_rd, old_wr = pipe()
    r.attach(old_rd, 1)
    os.close(old_rd)
    new_rd, new_wr = pipe()
    r.attach(new_rd, 2)
    os.close(new_rd)
    os.write(new_wr, b"new")
    assert wait_for(lambda: data_of(list(r.received), 2) == b"new")
    # the old port's duplicate is closed: its writer sees no reader left
    with pytest.raises(BrokenPipeError):
        for _ in range(1000):
            os.write(old_wr, b"x")
            time.sleep(0.001)
    assert data_of(list(r.received), 1) == b""
    r.detach()
    assert wait_for(lambda: not r.holding())
    with pytest.raises(BrokenPipeError):
        for _ in range(1000):
            os.write(new_wr, b"x")
            time.sleep(0.001)
    for fd in (old_wr, new_wr):
        os.close(fd)


def test_a_wake_up_ends_the_wait_and_is_not_lost_when_it_comes_first() -> None:
    w = WakePipe()
    try:
        w.wake()  # before the wait: the wait ends at once
        t0 = time.monotonic()
        w.wait(30.0)
        assert time.monotonic() - t0 < 25.0
        threading.Timer(0.05, w.wake).start()
        t0 = time.monotonic()
        w.wait(30.0)
        assert time.monotonic() - t0 < 25.0
    finally:
        w.close()
