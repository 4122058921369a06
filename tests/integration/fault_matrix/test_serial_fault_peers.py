"""Fault matrix, serial rows shared by both controllers: the Python emulator and the reference firmware on its
emulated board (simavr), each its own process behind a real pseudo-terminal, driven by the real ``SerialLink``.

The invariants are those of ``test_serial_faults.py``: sent == sum of outcomes (one each), whatever executed
switched exactly at its commanded count, nothing of an old epoch executes, and the link is alive afterwards.

Rows (both peers): a power cut with the encoder back at 0 while commands are queued -> lost; an encoder reset
-> lost; garbage and frames of unknown types written into the controller's input -> counted and refused by the
controller, the commands around them unharmed; the link thread stalls past the 100 ms watchdog -> valves closed,
FAULT, re-armed, every command still ends in one outcome. The rows where the *controller* sends garbage, unknown
types or unknown NAK reasons stay in ``test_serial_faults.py`` against the Python emulator only: they test this
host's decoder, and the firmware never sends such frames (its encoder is golden-tested against the same codec).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from serial_peers import PEERS, FirmwarePeer, PythonPeer, make_peer
from test_serial_faults import Ledger, raw_frame

from firmware_bridge.host_session import SessionConfig
from firmware_bridge.serial_link import SerialLink


@pytest.fixture
def watchdog_ms() -> float:
    """The Python emulator's watchdog in the rows that are not about it: 1 s, so that a busy machine holding the
    emulator's process past 100 ms does not trip it and turn the row's outcomes into a watchdog row's. The
    watchdog row sets 100 ms (``pytest.mark.parametrize("watchdog_ms", ...)``)."""
    return 1000.0


@pytest.fixture(params=PEERS)
def rig(
    request: pytest.FixtureRequest, tmp_path: Path, watchdog_ms: float
) -> Iterator[tuple[Ledger, PythonPeer | FirmwarePeer]]:
    peer = make_peer(request.param, tmp_path, watchdog_ms)
    # ACKs get 250 ms (not 20): the rows assert outcomes, and a busy machine can hold the peer's process
    config = SessionConfig(ack_timeout_ns=250_000_000)
    link = SerialLink(peer.url, baudrate=1_000_000, config=config, reconnect_min_s=0.02, reconnect_max_s=0.2)
    link.start()
    try:
        assert link.wait_ready(15.0), f"the {peer.name} controller did not arm: {link.health()}"
        yield Ledger(link, speed_cps=peer.speed_cps, valves=peer.valves), peer
    finally:
        link.close()
        peer.stop()


def test_power_cut_with_encoder_reset_while_commands_are_pending(rig: tuple[Ledger, PythonPeer | FirmwarePeer]) -> None:
    ledger, peer = rig
    ledger.submit_ahead(range(1, 11), lead_s=5.0, spacing_s=0.1)  # none runs before the cut, however busy
    ledger.wait_accepted(range(1, 11))
    before = ledger.link.request_status(2.0)
    peer.power_cut()  # the queue, the id history and the count are gone; a new boot id, disarmed
    ledger.wait_final(range(1, 11), 20.0)
    assert ledger.check() == {"lost": 10}
    assert all("epoch change" in ledger.events[c][-1].detail for c in range(1, 11))
    st = ledger.link.request_status(2.0)
    assert st is not None and before is not None and st.boot_id != before.boot_id
    ledger.assert_alive(range(20, 25))
    st = ledger.link.request_status(2.0)
    totals = ledger.check()
    assert st is not None and st.executed == totals["executed"]  # the new controller ran the new commands only
    assert totals["lost"] == 10 and totals["executed"] + totals["late"] == 5
    assert ledger.link.stats()["epoch_changes"] == 1


def test_encoder_reset_bumps_the_epoch_and_old_commands_are_lost(rig: tuple[Ledger, PythonPeer | FirmwarePeer]) -> None:
    ledger, peer = rig
    ledger.submit_ahead(range(1, 9), lead_s=5.0, spacing_s=0.1)  # none runs before the reset, however busy
    ledger.wait_accepted(range(1, 9))
    before = ledger.link.request_status(2.0)
    peer.zero_encoder()  # queue dropped, EPOCH sent, still armed
    ledger.wait_final(range(1, 9), 10.0)
    assert ledger.check() == {"lost": 8}
    assert ledger.link.stats()["epoch_changes"] == 1
    ledger.assert_alive(range(20, 25))
    st = ledger.link.request_status(2.0)
    totals = ledger.check()
    assert st is not None and before is not None
    assert st.boot_id == before.boot_id and st.epoch == (before.epoch + 1) & 0xFFFF and st.executed == totals["executed"]
    assert totals["lost"] == 8 and totals["executed"] + totals["late"] == 5


def test_garbage_and_unknown_types_into_the_controller(rig: tuple[Ledger, PythonPeer | FirmwarePeer]) -> None:
    """Noise on the host-to-controller wire: each write whole, between the link's own frames."""
    ledger, peer = rig
    before = ledger.link.request_status(2.0)
    ledger.submit_ahead(range(1, 7), lead_s=1.0)
    noise = serial.Serial(peer.url, baudrate=1_000_000)  # a second writer on the host's end of the wire
    try:
        for chunk in (
            b"\x17\xff\xfe" * 40 + b"\x00",  # noise
            raw_frame(0x10, 62000, b"\x01" * 5),  # a FIRE of a wrong length (good CRC)
            raw_frame(0x3C, 62001, b"\x02" * 3),  # a type no version defines
            raw_frame(0x99, 62002, b""),  # another
            b"\x05\x01\x02\x03\x04\x00",  # a frame whose CRC is wrong
        ):
            noise.write(chunk)
            noise.flush()
            time.sleep(0.02)
    finally:
        noise.close()
    ledger.wait_final(range(1, 7), 15.0)
    totals = ledger.check()
    assert totals["executed"] + totals["late"] == 6, totals
    ledger.wait(lambda: ledger.link.stats()["nak_unmatched"] >= 2, 3.0, "the NAKs of the two unknown types")
    st = ledger.link.request_status(2.0)
    assert st is not None and before is not None
    assert st.bad_frames - before.bad_frames >= 4, (before.bad_frames, st.bad_frames)
    assert st.boot_id == before.boot_id and st.watchdog_trips == before.watchdog_trips  # no reset, no trip
    assert ledger.link.stats()["thread_errors"] == 0
    ledger.assert_alive(range(20, 25))


@pytest.mark.parametrize("watchdog_ms", [100.0])
def test_link_stall_trips_the_watchdog_and_every_command_ends_once(
    rig: tuple[Ledger, PythonPeer | FirmwarePeer],
) -> None:
    """The link thread stops for a second (no heartbeat): the controller closes its valves, reports FAULT
    WATCHDOG, the host re-arms and resends what is outstanding; nothing is fired twice or late."""
    ledger, peer = rig
    lead_s = 3.0
    ledger.submit_ahead(range(1, 9), lead_s=lead_s, spacing_s=0.2)
    ledger.wait_accepted(range(1, 9))
    session = ledger.link.session
    poll = session.poll
    stalled = {"left": 1}

    def stalling_poll(now_ns: int) -> bytes:
        if stalled["left"]:
            stalled["left"] -= 1
            time.sleep(1.0 / (peer.speed_cps / 25_000.0))  # 1 s of the controller's time: ten watchdog periods
        return poll(now_ns)

    session.poll = stalling_poll  # type: ignore[method-assign]
    ledger.wait(lambda: ledger.link.stats()["watchdog_faults"] >= 1, 10.0, "FAULT WATCHDOG from the controller")
    ledger.wait_final(range(1, 9), 30.0)
    totals = ledger.check()
    assert totals["executed"] + totals["late"] + totals["lost"] + totals["rejected"] == 8, totals
    st = ledger.link.request_status(2.0)
    assert st is not None and st.watchdog_trips >= 1
    ledger.assert_alive(range(20, 25))
