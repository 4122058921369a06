"""TxBacklog: what a stalled serial port has not taken yet goes out later, in order, never twice."""

from __future__ import annotations

import pytest

from firmware_bridge.codec import FrameDecoder, encode_frame
from firmware_bridge.messages import Fire, Heartbeat, Ping
from firmware_bridge.tx_backlog import TxBacklog, is_heartbeat


def decoded(data: bytes) -> list[object]:
    return [r.message for r in FrameDecoder().feed(data)]  # type: ignore[union-attr]


def test_frames_leave_in_order_across_partial_writes() -> None:
    frames = [encode_frame(Fire(k, 0, 0, 1000 + k, 1100 + k), k) for k in range(1, 6)]
    b = TxBacklog()
    b.add(b"".join(frames[:3]))
    wire = bytearray()
    for n in (1, 7, 3):  # the port takes odd amounts, cutting frames
        chunk = b.pending()[:n]
        wire += chunk
        b.written(len(chunk), 0.0)
    b.add(b"".join(frames[3:]))
    while b:
        chunk = b.pending()[:5]
        wire += chunk
        b.written(len(chunk), 0.0)
    assert bytes(wire) == b"".join(frames)
    assert len(b) == 0 and b.pending() == b""


def test_a_newer_heartbeat_replaces_unstarted_ones_only() -> None:
    b = TxBacklog()
    hb1, hb2, hb3 = (encode_frame(Heartbeat(k), 10 + k) for k in (1, 2, 3))
    ping = encode_frame(Ping(123), 20)
    b.add(hb1 + ping)
    b.written(2, 0.0)  # hb1 has started out: it must finish, never be cut
    b.add(hb2)
    b.add(hb3)  # hb2 never started: replaced
    assert b.heartbeats_coalesced == 1
    wire = hb1[:2] + b.pending()
    assert [type(m).__name__ for m in decoded(wire)] == ["Heartbeat", "Ping", "Heartbeat"]
    assert decoded(wire)[2] == Heartbeat(3)


def test_is_heartbeat_and_bad_input() -> None:
    assert is_heartbeat(encode_frame(Heartbeat(7), 1))
    assert not is_heartbeat(encode_frame(Ping(7), 1))
    assert not is_heartbeat(b"\x05\x00")  # not valid COBS
    b = TxBacklog()
    with pytest.raises(ValueError, match="whole frames"):
        b.add(encode_frame(Ping(1), 1)[:-1])
    b.add(encode_frame(Ping(1), 1))
    with pytest.raises(ValueError, match="were pending"):
        b.written(len(b) + 1, 0.0)
    b.clear(0.0)
    assert not b and len(b) == 0


def test_stalls_are_timed_from_the_first_refused_byte_to_an_empty_backlog() -> None:
    b = TxBacklog()
    ping = encode_frame(Ping(1), 1)
    b.add(ping)
    b.written(len(ping), 1.0)  # all taken: no stall
    assert b.stalls == 0 and b.stall_since_s is None
    b.add(ping + encode_frame(Heartbeat(1), 2))
    b.written(3, 2.0)  # the port left bytes behind: a stall begins
    b.written(0, 2.1)  # still the same stall
    b.add(encode_frame(Heartbeat(2), 3))  # replaces the unstarted HEARTBEAT 1: the byte count follows
    assert b.stalls == 1 and b.stall_since_s == 2.0 and len(b) == len(b.pending())
    b.written(len(b), 2.5)
    assert b.stall_since_s is None and b.stall_s_total == pytest.approx(0.5) and b.stall_s_max == pytest.approx(0.5)
    b.add(ping)
    b.written(0, 3.0)
    b.clear(3.2)  # the port is gone: the stall ends with it
    assert b.stalls == 2 and b.stall_s_total == pytest.approx(0.7) and b.stall_s_max == pytest.approx(0.5)
