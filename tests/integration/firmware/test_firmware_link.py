"""The firmware as a real peer of the serial link: the emulated board runs in real time on a pseudo-terminal and
this host talks to it with pyserial at 1 Mbaud, as the sorter talks to a board on a USB serial adapter.

Checks behaviour (answers, states, what the pins did), not speed: the pin log is on the emulator's clock. The
board runs at a quarter of real time, so that this host's heartbeats (every 20 ms of wall time, 5 ms of the
board's) keep the watchdog fed even when the machine is busy: only the test that stops them sees it trip.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import fwfixtures
import pytest
from fwboard import (
    ACK_DONE,
    ACK_DUPLICATE,
    ACK_OK,
    ACK_QUEUED,
    FAULT_WATCHDOG,
    FLAG_ARMED,
    FLAG_ENCODER_OK,
    FLAG_FAULTED,
    NAK_BAD_CRC,
    NAK_MALFORMED,
    NAK_NOT_ARMED,
    NAK_UNKNOWN_TYPE,
    NAK_WRONG_EPOCH,
    SEQ_NONE,
    Board,
    Build,
    Frame,
    Peer,
    encode_raw,
    frames,
)

fw = fwfixtures.fw

SPEED = 25_000  # counts/s: 2.5 m/s at 10 counts/mm

# PROTOCOL.md section 2.3
GOLDEN = {
    "FIRE": "03 10 03 02 07 01 01 02 0c 02 0f 04 a0 86 01 01 01 01 01 04 62 88 01 01 01 01 01 02 01 03 c1 9f 00",
    "PICK": "03 11 04 02 08 01 01 04 90 d0 03 08 24 fa ff ff 40 0d 03 01 01 01 01 02 01 03 70 57 00",
    "HEARTBEAT": "03 13 01 02 01 01 01 03 23 2d 00",
    "ARM": "03 14 01 07 78 56 34 12 29 92 00",
    "ACK": "03 80 09 02 03 02 07 01 01 01 03 87 78 00",
    "STATUS": "03 85 0f 03 02 09 01 02 40 02 02 01 05 01 1b 87 01 01 01 01 01 02 0a 01 01 02 01 01 01 01 01 01 01 01 "
              "01 01 01 01 01 01 01 0a 78 56 34 12 0d f0 fe ca 01 03 b8 bc 00",
}


def golden(name: str) -> bytes:
    return bytes.fromhex(GOLDEN[name])


@pytest.fixture
def board(fw: Build, tmp_path: Path) -> Iterator[Board]:
    with Board(fw, tmp_path, profile=str(SPEED), seed=7, extra=("--time-scale", "0.25")) as b:
        yield b


@pytest.fixture
def peer(board: Board) -> Iterator[Peer]:
    with Peer(board.pty_path) as p:
        time.sleep(0.2)  # the firmware boots (emulated milliseconds)
        yield p


def armed(peer: Peer, session: int = 0x1234) -> Frame:
    status = peer.status()
    seq = peer.send("ARM", session_id=session)
    assert peer.answer(seq)["result"] == ACK_OK
    peer.heartbeats.set()
    return status


def test_golden_frames_are_answered_as_the_page_says(peer: Peer) -> None:
    status = peer.status()
    assert status["version"] == 2 and status["valve_count"] == 32 and status["queue_capacity"] == 64
    assert status["boot_id"] != 0 and status["epoch"] != 0
    assert status["flags"] == FLAG_ENCODER_OK  # disarmed after power-up
    peer.write(golden("FIRE"))
    nak = peer.answer(3)
    assert (nak.name, nak["command_id"], nak["reason"]) == ("NAK", 7, NAK_NOT_ARMED)
    peer.write(golden("ARM"))
    ack = peer.answer(1)
    assert (ack.name, ack["command_id"], ack["result"]) == ("ACK", 0, ACK_OK)
    peer.write(golden("HEARTBEAT"))  # no answer
    peer.heartbeats.set()
    peer.write(golden("FIRE"))  # epoch 1: this boot's epoch is drawn at random, never 1 here
    nak = peer.answer(3)
    assert (nak.name, nak["reason"]) == ("NAK", NAK_WRONG_EPOCH)
    peer.write(golden("PICK"))
    assert peer.answer(4)["reason"] == NAK_WRONG_EPOCH
    for name, seq in (("ACK", 9), ("STATUS", 15)):  # controller-to-host frames sent to the controller
        peer.write(golden(name))
        nak = peer.answer(seq)
        assert (nak.name, nak["reason"]) == ("NAK", NAK_UNKNOWN_TYPE)
    damaged = bytearray(golden("HEARTBEAT"))
    damaged[4] ^= 0x10
    peer.write(bytes(damaged))
    nak = peer.expect("NAK", acked_seq=SEQ_NONE)
    assert nak["reason"] == NAK_BAD_CRC
    v1_fire = encode_raw(0x10, 40, bytes.fromhex(GOLDEN["FIRE"].replace(" ", ""))[:24])  # 24-byte version-1 FIRE
    peer.write(b"\x00" + v1_fire)
    assert peer.answer(40)["reason"] == NAK_MALFORMED
    t = 123456789
    peer.send("PING", host_time_ns=t)
    pong = peer.expect("PONG", host_time_ns=t)
    assert pong["boot_id"] == status["boot_id"] and pong["epoch"] == status["epoch"]
    now = peer.status()
    assert now["bad_frames"] >= 4 and now["session_id"] == 0x12345678 and now["flags"] & FLAG_ARMED


def test_fire_commands_run_at_their_counts(board: Board, peer: Peer) -> None:
    epoch = armed(peer)["epoch"]
    start = peer.count()
    sent: dict[int, tuple[int, int]] = {}
    for k in range(12):
        open_count = start + 2_500 + 400 * k  # 100 ms ahead and more
        seq = peer.send("FIRE", command_id=100 + k, valve_first=2 * k, valve_last=2 * k + 1, open_count=open_count,
                        close_count=open_count + 250, epoch=epoch)
        answer = peer.answer(seq)
        assert answer.name == "ACK" and answer["result"] == ACK_QUEUED, answer
        sent[100 + k] = (2 * k, open_count)
    seq = peer.send("FIRE", command_id=100, valve_first=0, valve_last=1, open_count=start + 2_500,
                    close_count=start + 2_750, epoch=epoch)
    assert peer.answer(seq)["result"] == ACK_DUPLICATE  # a retransmission changes nothing
    reports: dict[int, Frame] = {}
    while len(reports) < len(sent):
        f = peer.expect("FIRED", timeout_s=10)
        reports[f["command_id"]] = f
    seq = peer.send("FIRE", command_id=105, valve_first=10, valve_last=11, open_count=sent[105][1],
                    close_count=sent[105][1] + 250, epoch=epoch)
    assert peer.answer(seq)["result"] == ACK_DONE  # executed: reported again, never fired twice
    assert peer.expect("FIRED", command_id=105)["open_count"] == sent[105][1]
    board.control("mark end")
    time.sleep(0.2)
    edges = board.events("valve")
    for cid, (k, open_count) in sent.items():
        assert (reports[cid]["open_count"], reports[cid]["close_count"]) == (open_count, open_count + 250)
        for v in (k, k + 1):
            on = [e["count"] for e in edges if e["valve"] == v and e["on"] == 1]
            off = [e["count"] for e in edges if e["valve"] == v and e["on"] == 0]
            assert on == [open_count] and off == [open_count + 250], (v, on, off)


def test_watchdog_closes_the_valves_when_the_heartbeats_stop(board: Board, peer: Peer) -> None:
    epoch = armed(peer)["epoch"]
    open_count = peer.count() + 1_250  # 50 ms ahead, on for 160 ms
    seq = peer.send("FIRE", command_id=1, valve_first=7, valve_last=7, open_count=open_count,
                    close_count=open_count + 4_000, epoch=epoch)
    assert peer.answer(seq)["result"] == ACK_QUEUED
    while peer.count() < open_count + 100:
        time.sleep(0.01)
    peer.heartbeats.clear()
    fired = peer.expect("FIRED", timeout_s=3, command_id=1)  # the pulse that was on, then the fault
    assert fired["open_count"] == open_count and fired["close_count"] < open_count + 4_000  # cut short
    fault = peer.expect("FAULT", timeout_s=1)
    assert fault["fault_code"] == FAULT_WATCHDOG and fault["encoder_count"] == fired["close_count"]
    status = peer.status()
    assert status["flags"] & FLAG_FAULTED and not status["flags"] & FLAG_ARMED
    assert status["watchdog_trips"] == 1
    seq = peer.send("FIRE", command_id=2, valve_first=7, valve_last=7, open_count=open_count + 50_000,
                    close_count=open_count + 50_100, epoch=epoch)
    assert peer.answer(seq)["reason"] == NAK_NOT_ARMED
    board.control("mark end")
    time.sleep(0.2)
    events = board.events()
    heartbeats = [e["t_us"] for e, f in frames(events, "rx") if isinstance(f, Frame) and f.name == "HEARTBEAT"]
    off = [e for e in events if e.get("ev") == "valve" and e["valve"] == 7 and e["on"] == 0]
    # the cut is asynchronous to the encoder: the count is read a cycle after the outputs switch, and an encoder
    # edge may fall in between (a chance of about 2 in 640 at this speed)
    assert len(off) == 1 and abs(off[0]["count"] - fired["close_count"]) <= 1
    last = max(h for h in heartbeats if h < off[0]["t_us"])
    assert 100_000 < off[0]["t_us"] - last <= 101_000  # on the controller's clock


def test_restart_draws_a_new_boot_and_epoch_and_stale_commands_never_fire(board: Board, peer: Peer) -> None:
    before = armed(peer)
    stale = peer.count() + 75_000  # 3 s ahead
    seq = peer.send("FIRE", command_id=1, valve_first=2, valve_last=2, open_count=stale, close_count=stale + 100,
                    epoch=before["epoch"])
    assert peer.answer(seq)["result"] == ACK_QUEUED
    peer.heartbeats.clear()
    board.control("reset")  # the controller restarts; its encoder count starts again from 0
    time.sleep(0.3)
    peer.drain()
    after = peer.status()
    assert after["boot_id"] != before["boot_id"] and after["epoch"] != before["epoch"]
    assert after["flags"] == FLAG_ENCODER_OK and after["queue_len"] == 0 and after["encoder_count"] < stale
    seq = peer.send("ARM", session_id=0x1234)
    assert peer.answer(seq)["result"] == ACK_OK
    peer.heartbeats.set()
    for cid in (1, 2):  # the retransmission and a new command computed in the old epoch
        seq = peer.send("FIRE", command_id=cid, valve_first=2, valve_last=2, open_count=stale,
                        close_count=stale + 100, epoch=before["epoch"])
        assert peer.answer(seq)["reason"] == NAK_WRONG_EPOCH
    open_count = peer.count() + 2_500
    seq = peer.send("FIRE", command_id=3, valve_first=2, valve_last=2, open_count=open_count,
                    close_count=open_count + 100, epoch=after["epoch"])
    assert peer.answer(seq)["result"] == ACK_QUEUED
    assert peer.expect("FIRED", timeout_s=5, command_id=3)["open_count"] == open_count
    board.control("mark end")
    time.sleep(0.2)
    resets = board.events("reset")
    edges = board.events("valve")
    assert [r["cause"] for r in resets] == ["pin"]
    assert [e["count"] for e in edges if e["on"] == 1] == [open_count]  # only the new epoch's command


def test_encoder_reset_starts_an_epoch_and_the_controller_stays_armed(board: Board, peer: Peer) -> None:
    before = armed(peer)
    far = peer.count() + 50_000
    seq = peer.send("FIRE", command_id=1, valve_first=9, valve_last=9, open_count=far, close_count=far + 100,
                    epoch=before["epoch"])
    assert peer.answer(seq)["result"] == ACK_QUEUED
    board.control("zero")
    new = peer.expect("EPOCH", timeout_s=2)
    assert new["boot_id"] == before["boot_id"]
    assert new["epoch"] == ((before["epoch"] + 1) % 0x10000 or 1)
    assert new["encoder_count"] < 1_000
    seq = peer.send("FIRE", command_id=1, valve_first=9, valve_last=9, open_count=far, close_count=far + 100,
                    epoch=before["epoch"])
    assert peer.answer(seq)["reason"] == NAK_WRONG_EPOCH
    status = peer.status()
    assert status["flags"] & FLAG_ARMED and status["queue_len"] == 0 and status["epoch"] == new["epoch"]
    open_count = peer.count() + 2_500
    seq = peer.send("FIRE", command_id=2, valve_first=9, valve_last=9, open_count=open_count,
                    close_count=open_count + 100, epoch=new["epoch"])
    assert peer.answer(seq)["result"] == ACK_QUEUED
    assert peer.expect("FIRED", timeout_s=5, command_id=2)["open_count"] == open_count
    board.control("mark end")
    time.sleep(0.2)
    assert [e["count"] for e in board.events("valve") if e["on"] == 1] == [open_count]

