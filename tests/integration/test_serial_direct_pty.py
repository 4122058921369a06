"""The serial link on the direct rig: the emulator owns a pseudo-terminal, the host opens its ``/dev/pts/N``.

No relay process between the two ends (the soak's default rig): the real
``SerialLink`` opens the slave path as it opens a real port, arms the emulated
controller, feeds its watchdog and has its commands executed; every command ends
in exactly one outcome. When the controller's end closes (the master: the line
hangs up) the link says the controller is lost and reconnecting, and closing it
finishes every outstanding command instead of waiting forever. While the thread
that reads the port is held up (a poll or read of a terminal waits in the kernel
for its flip-buffer work), the heartbeats still go out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from firmware_bridge.controller import ControllerLimits
from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.emulators.ports import PtyMasterPort
from firmware_bridge.emulators.valve_controller import ValveControllerEmulator
from firmware_bridge.host_session import SessionConfig
from firmware_bridge.messages import Fire
from firmware_bridge.serial_link import SerialLink

SPEED = 25_000.0  # counts per second: 2.5 m/s at 10 counts/mm
FINAL = ("executed", "late", "rejected", "cancelled", "lost")


@dataclass
class DirectRig:
    port: PtyMasterPort
    device: FreeRunningDevice
    emu: ValveControllerEmulator
    link: SerialLink
    heartbeats_seen: list[int] = field(default_factory=list)
    outcomes: dict[int, str] = field(default_factory=dict)
    doubles: int = 0

    def collect(self) -> None:
        for e in self.link.poll_events():
            if e.status not in FINAL:
                continue
            if e.command_id in self.outcomes:
                self.doubles += 1
            self.outcomes[e.command_id] = e.status

    def wait_for(self, what: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.collect()
            if what():
                return True
            time.sleep(0.01)
        self.collect()
        return what()


@pytest.fixture
def rig() -> Iterator[DirectRig]:
    port = PtyMasterPort()
    device = FreeRunningDevice(8, SPEED)
    emu = ValveControllerEmulator(port, device, ControllerLimits(queue_capacity=256))
    r = DirectRig(port, device, emu, SerialLink(port.host_path, config=SessionConfig(), reconnect_min_s=0.02,
                                                reconnect_max_s=0.2))
    feed = emu.core.heartbeat

    def counted_heartbeat(wall_ns: int) -> None:  # what reaches the controller's watchdog
        r.heartbeats_seen.append(wall_ns)
        feed(wall_ns)

    emu.core.heartbeat = counted_heartbeat  # type: ignore[method-assign]
    emu.start()
    r.link.start()
    try:
        assert r.link.wait_ready(10.0), f"the link did not arm the controller: {r.link.health()}"
        yield r
    finally:
        r.link.close()
        emu.stop()


def test_commands_and_heartbeats_cross_the_direct_pty(rig: DirectRig) -> None:
    assert rig.port.host_path.startswith("/dev/")
    n = rig.device.encoder_count()
    # far enough ahead to survive a loaded machine: 1 s of belt and more
    sent = {i: Fire(i, i % 8, i % 8, n + 25_000 + 500 * i, n + 25_100 + 500 * i) for i in range(1, 21)}
    for c in sent.values():
        rig.link.submit(c)
    assert rig.wait_for(lambda: len(rig.outcomes) == len(sent), 20.0), rig.outcomes
    assert rig.doubles == 0
    counts = {s: list(rig.outcomes.values()).count(s) for s in FINAL}
    assert len(sent) == sum(counts.values())
    assert counts["executed"] >= 1, counts  # the controller ran what the host sent over the pty
    assert rig.emu.core.counters.executed == counts["executed"]
    assert rig.heartbeats_seen, "no heartbeat reached the controller"
    assert rig.link.stats()["heartbeats"] >= len(rig.heartbeats_seen) >= 1
    assert rig.emu.core.counters.bad_frames == 0
    assert rig.device.open_valve_count() == 0  # a pulse is reported when it ends


def test_closing_the_controller_end_reports_lost_and_close_finishes_everything(rig: DirectRig) -> None:
    n = rig.device.encoder_count()
    before = {i: Fire(i, 0, 0, n + 5_000 + 100 * i, n + 5_050 + 100 * i) for i in range(1, 6)}
    for c in before.values():
        rig.link.submit(c)
    assert rig.wait_for(lambda: len(rig.outcomes) == len(before), 20.0), rig.outcomes

    rig.emu.stop()  # closes the master: the line hangs up, /dev/pts/N disappears
    assert rig.wait_for(lambda: not rig.link.health()[0], 10.0)
    healthy, why = rig.link.health()
    assert not healthy and "lost, reconnecting" in why, why
    stats = rig.link.stats()
    assert stats["connected"] == 0
    assert stats["reconnects_peer_closed"] + stats["reconnects_io_error"] >= 1

    # commands handed to a link without its controller still end in one outcome each
    far = rig.device.encoder_count() + 250_000
    after = {i: Fire(i, 1, 1, far + 100 * i, far + 50 + 100 * i) for i in range(100, 105)}
    for c in after.values():
        rig.link.submit(c)
    rig.link.close()  # returns: nothing waits on the dead port
    rig.collect()
    assert rig.doubles == 0
    assert set(rig.outcomes) == set(before) | set(after)
    assert all(rig.outcomes[i] in ("lost", "rejected", "cancelled") for i in after), rig.outcomes


def test_heartbeats_go_out_while_the_port_reader_is_held_up(rig: DirectRig) -> None:
    """The reader stops inside a read of the port (as a poll or read of a terminal waits for its flip-buffer
    work, run by a kernel worker that a loaded machine delays): the link's thread keeps feeding the
    controller's watchdog, and what the controller said meanwhile reaches the session once the reader goes on."""
    reader = rig.link._reader
    read = reader._read
    held, release = threading.Event(), threading.Event()

    def held_read(generation: int, fd: int) -> bool:
        if not release.is_set():
            held.set()
            release.wait(60.0)
        return read(generation, fd)

    reader._read = held_read  # type: ignore[method-assign]
    try:
        assert held.wait(10.0), "the reader never came back to the port"
        assert rig.wait_for(lambda: not reader.received, 10.0)  # what it read before was handed to the session
        beats_seen, beats_sent = len(rig.heartbeats_seen), rig.link.stats()["heartbeats"]
        status = rig.link.last_status()
        assert rig.wait_for(lambda: len(rig.heartbeats_seen) >= beats_seen + 10, 30.0), "heartbeats stopped"
        # the link counts a heartbeat when it sends it, so the first count may hold one the controller had not yet read
        assert rig.wait_for(lambda: rig.link.stats()["heartbeats"] >= beats_sent + 10, 10.0)
        assert rig.link.last_status() is status  # nothing was read meanwhile
    finally:
        release.set()
    fresh = rig.link.request_status(10.0)
    assert fresh is not None and fresh is not status
    assert rig.link.health() == (True, "") and rig.link.stats()["port_opens"] == 1
