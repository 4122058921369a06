"""``PtyMasterPort``: a pseudo-terminal owned by the controller's side, the host opening its slave like a serial port."""

from __future__ import annotations

import os
import select
import termios
import time

import pytest
import serial

from firmware_bridge.emulators.ports import PortGoneError, PtyMasterPort


def _drain(host: serial.Serial, port: PtyMasterPort, n_bytes: int) -> bytes:
    """``n_bytes`` read on the host's side while the port sends its backlog (it goes out as the host reads)."""
    got = bytearray()
    deadline = time.monotonic() + 30.0  # against a hang only: the kernel moves pty bytes in its own time
    while len(got) < n_bytes and time.monotonic() < deadline:
        port.receive(0.0)  # sends what is waiting once the master is writable
        ready, _, _ = select.select([host.fileno()], [], [], 0.01)
        if ready:
            got += os.read(host.fileno(), 65536)
    return bytes(got)


def test_the_slave_is_a_raw_serial_line_before_the_host_opens_it() -> None:
    with PtyMasterPort() as port:
        fd = os.open(port.host_path, os.O_RDWR | os.O_NOCTTY)
        try:
            _, _, _, lflag, *_ = termios.tcgetattr(fd)
            assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG)
        finally:
            os.close(fd)


def test_bytes_cross_both_ways_unchanged() -> None:
    with PtyMasterPort() as port, serial.Serial(port.host_path, timeout=30.0) as host:
        frame = bytes(range(256)) + b"\r\n\x00\x03\x11\x13"  # CR/LF, Ctrl-C, XON/XOFF: no line discipline in the way
        host.write(frame)
        got = bytearray()
        for _ in range(300):  # 30 s against a hang
            got += port.receive(0.1)
            if len(got) >= len(frame):
                break
        assert bytes(got) == frame
        port.write(frame)
        assert host.read(len(frame)) == frame


def test_writes_never_block_keep_order_and_drop_whole_writes_when_the_backlog_is_full() -> None:
    with PtyMasterPort(tx_limit_bytes=8192) as port, serial.Serial(port.host_path, timeout=0) as host:
        chunks = [bytes([i % 251]) * 1000 for i in range(200)]  # 200 kB with nobody reading: far over every buffer
        for chunk in chunks:
            port.write(chunk)  # returns at once each time
        c = port.counters
        assert c.write_stalls >= 1
        assert c.tx_dropped_bytes > 0 and c.tx_dropped_bytes % 1000 == 0  # whole writes only
        assert 0 < c.tx_backlog_max_bytes <= 8192
        sent = sum(len(x) for x in chunks) - c.tx_dropped_bytes
        got = _drain(host, port, sent)
        assert len(got) == sent and port.tx_pending_bytes == 0
        kept = [got[i : i + 1000] for i in range(0, len(got), 1000)]
        assert all(len(set(k)) == 1 for k in kept)  # no write cut by another
        ids = [k[0] for k in kept]
        assert ids == sorted(ids)  # in the order written (ids below 251 here)


def test_closing_the_master_hangs_up_the_line() -> None:
    port = PtyMasterPort()
    host = serial.Serial(port.host_path, timeout=0)
    path = port.host_path
    port.close()
    assert port.fileno() == -1
    assert os.read(host.fileno(), 100) == b""  # end of file: the host knows the line is gone
    assert not os.path.exists(path)
    with pytest.raises(PortGoneError):
        port.receive(0.0)
    with pytest.raises(PortGoneError):
        port.write(b"x")
    port.close()  # twice is fine
    host.close()


def test_a_host_closing_its_end_is_not_a_lost_port() -> None:
    with PtyMasterPort() as port:
        with serial.Serial(port.host_path, timeout=0):
            pass
        port.write(b"report")  # the controller keeps talking into the line
        assert port.receive(0.0) == b""  # nothing came, and no error: the slave is still held
        with serial.Serial(port.host_path, timeout=30.0) as host:
            host.write(b"hi")
            got = b""
            for _ in range(300):
                got += port.receive(0.1)
                if len(got) >= 2:
                    break
            assert got == b"hi"
