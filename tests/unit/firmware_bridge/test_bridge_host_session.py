"""Host protocol machine against the controller's firmware logic, both sans-IO, over an in-memory wire.

Time is moved by the test, bytes can be dropped or damaged in either direction,
so every timing rule (retransmission, backoff, heartbeats, re-arm) is checked
deterministically.
"""

from __future__ import annotations

from collections.abc import Callable

from firmware_bridge.cobs import cobs_decode
from firmware_bridge.codec import DecodedFrame, decode_body
from firmware_bridge.controller import ControllerCore, ControllerLimits
from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.emulators.valve_controller import ValveControllerProtocol
from firmware_bridge.host_session import HostSession, SessionConfig
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import Ack, Cancel, Fire

MS = 1_000_000

Filter = Callable[[bytes], bytes]


def drop(kind: type, times: int = 1_000_000) -> Filter:
    """A wire filter that removes the first ``times`` frames carrying a ``kind`` message."""
    left = {"n": times}

    def f(data: bytes) -> bytes:
        out = bytearray()
        for chunk in data.split(b"\x00")[:-1]:
            r = decode_body(cobs_decode(chunk))
            if left["n"] and isinstance(r, DecodedFrame) and isinstance(r.message, kind):
                left["n"] -= 1
                continue
            out += chunk + b"\x00"
        return bytes(out)

    return f


class Wire:
    """Host session <-> controller protocol, stepped in 0.5 ms increments of fake time."""

    def __init__(self, limits: ControllerLimits | None = None, cfg: SessionConfig | None = None, speed: float = 10_000.0) -> None:
        self.t = 1_000 * MS
        self.device = FreeRunningDevice(8, speed, time_ns=lambda: self.t)
        self.core = ControllerCore(self.device, limits or ControllerLimits(queue_capacity=8, min_lead_us=0))
        self.ctrl = ValveControllerProtocol(self.core)
        self.host = HostSession(cfg or SessionConfig(), session_id=99)
        self.to_ctrl: Filter = lambda b: b
        self.to_host: Filter = lambda b: b
        self.events: list[LinkEvent] = []
        self.host.connection_made(self.t)

    def step(self, ms: float = 0.5) -> None:
        out = self.host.poll(self.t)
        if out:
            reply = self.ctrl.receive(self.to_ctrl(out), self.t)
            if reply:
                self.host.receive(self.to_host(reply), self.t)
        reports = self.ctrl.tick(self.t)
        if reports:
            self.host.receive(self.to_host(reports), self.t)
        self.events += self.host.take_events()
        self.t += round(ms * MS)

    def run(self, ms: float) -> None:
        for _ in range(round(ms / 0.5)):
            self.step()

    def count(self) -> int:
        return self.device.encoder_count()

    def statuses(self, cid: int) -> list[str]:
        return [e.status for e in self.events if e.command_id == cid]


def test_arm_then_fire_accepted_and_executed_at_its_count() -> None:
    w = Wire()
    w.run(2)
    assert w.host.armed and w.core.armed
    n = w.count()
    w.host.submit(Fire(1, 0, 2, n + 50, n + 80), w.t)
    w.run(1)
    assert w.statuses(1) == ["accepted"]
    assert w.host.idle()
    w.run(10)
    ex = [e for e in w.events if e.command_id == 1 and e.status == "executed"]
    assert ex == [LinkEvent(1, "executed", n + 50, n + 80)]
    assert w.host.outstanding() == 0


def test_the_host_counts_its_own_late_heartbeats_and_forgets_the_gap_across_a_reconnection() -> None:
    w = Wire()
    w.run(200)
    assert w.host.counters["heartbeat_gap_ms_max"] == 25 and w.host.counters["heartbeats_late"] == 0
    w.t += 70 * MS  # the host's link thread did not run for 70 ms: a gap of 95 ms, late
    w.run(50)
    assert w.host.counters["heartbeat_gap_ms_max"] == 95 and w.host.counters["heartbeats_late"] == 1
    w.host.connection_lost(w.t)
    w.t += 500 * MS  # no port: no heartbeat is due
    w.host.connection_made(w.t)
    w.run(100)
    assert w.host.counters["heartbeat_gap_ms_max"] == 95 and w.host.counters["heartbeats_late"] == 1


def test_heartbeats_keep_the_watchdog_fed_for_a_long_time() -> None:
    w = Wire()
    w.run(1000)
    assert w.core.armed and w.core.counters.watchdog_trips == 0
    assert 35 <= w.host.counters["heartbeats"] <= 45  # every 25 ms


def test_lost_frame_is_retransmitted_and_answered_once() -> None:
    w = Wire()
    w.run(2)
    w.to_ctrl = drop(Fire, times=1)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 400, n + 450), w.t)
    w.run(10)
    assert w.statuses(1) == []  # lost, waiting for the ACK timeout (20 ms)
    w.run(15)
    assert w.statuses(1) == ["accepted"]
    assert w.host.counters["retransmits"] == 1
    w.run(30)
    assert w.statuses(1) == ["accepted", "executed"]


def test_lost_ack_retransmission_is_a_duplicate_not_a_second_pulse() -> None:
    w = Wire()
    w.run(2)
    w.to_host = drop(Ack)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 500, n + 550), w.t)
    w.run(25)
    w.to_host = lambda b: b
    w.run(30)
    assert w.core.counters.duplicates >= 1
    w.run(30)
    assert w.statuses(1) == ["accepted", "executed"]
    assert w.core.counters.executed == 1


def test_a_resend_after_the_position_passed_asks_the_controller_which_refuses_it_late() -> None:
    w = Wire(cfg=SessionConfig(ack_timeout_ns=20 * MS, max_retries=10))
    w.run(500)  # PING/PONG give the host an encoder sync and a speed
    w.to_ctrl = drop(Fire, times=1)  # the first FIRE never reaches the controller
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 100, n + 150), w.t)  # 10 ms ahead: passed before the ACK timeout
    w.run(100)
    assert w.statuses(1) == ["late"]
    assert [e.detail for e in w.events if e.command_id == 1] == ["controller NAK LATE"]
    assert w.host.counters["late_local"] == 0 and w.host.counters["sent"] == 2
    assert w.core.counters.executed == 0


def test_a_command_whose_ack_was_lost_is_never_called_late_while_the_controller_fires_it() -> None:
    """The ACK is lost, the position passes before the resend: the controller had it and fires it."""
    w = Wire(cfg=SessionConfig(ack_timeout_ns=20 * MS, max_retries=10))
    w.run(500)
    w.to_host = drop(Ack, times=1)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 100, n + 600), w.t)  # opens after 10 ms, closes after 60 ms
    w.run(100)
    assert w.core.counters.executed == 1
    assert w.statuses(1) == ["accepted", "executed"]
    assert w.host.counters["late_local"] == 0 and w.host.counters["executed_after_outcome"] == 0
    assert w.core.counters.duplicates == 1  # the resend found it queued (blowing): nothing changed


def test_a_pulse_the_host_gave_up_on_and_the_controller_still_fired_is_counted() -> None:
    """Every ACK and the CANCEL are lost: the host reports the command rejected, the controller fires it."""
    w = Wire(cfg=SessionConfig(ack_timeout_ns=5 * MS, max_retries=2))
    w.run(500)
    w.to_host = drop(Ack)
    w.to_ctrl = drop(Cancel)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 500, n + 550), w.t)  # 50 ms ahead: given up after three unanswered sends
    w.run(100)
    assert w.statuses(1) == ["rejected"] and w.core.counters.executed == 1
    assert w.host.counters["executed_after_outcome"] == 1


def test_a_command_never_sent_whose_position_passed_is_late_without_a_transmission() -> None:
    w = Wire()
    w.run(500)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n - 5000, n - 4950), w.t)  # behind the last count the controller reported (PONGs every 200 ms)
    w.run(5)
    assert w.statuses(1) == ["late"]
    assert w.host.counters["late_local"] == 1 and w.host.counters["sent"] == 0


def test_bounded_retries_then_rejected_and_cancelled() -> None:
    w = Wire(cfg=SessionConfig(ack_timeout_ns=5 * MS, max_retries=2))
    w.run(2)
    w.to_ctrl = drop(Fire)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 5000, n + 5050), w.t)
    w.run(40)
    assert w.statuses(1) == ["rejected"]
    assert w.host.counters["sent"] == 3
    assert w.host.counters["no_answer"] == 1


def test_queue_full_backs_off_and_eventually_sends_everything() -> None:
    w = Wire(limits=ControllerLimits(queue_capacity=4, min_lead_us=0))
    w.run(2)
    n = w.count()
    for i in range(20):
        w.host.submit(Fire(i, 0, 0, n + 100 + 20 * i, n + 110 + 20 * i), w.t)
    w.run(100)
    finals = {e.command_id: e.status for e in w.events if e.status in ("executed", "late", "rejected")}
    assert len(finals) == 20
    assert w.host.counters["nak_queue_full"] > 0
    executed = [e for e in w.events if e.status == "executed"]
    for e in executed:  # executed exactly at the commanded count: nothing fired late
        assert e.open_count == n + 100 + 20 * e.command_id
    assert len(executed) >= 10


def test_damaged_bytes_are_counted_and_recovered_by_retransmission() -> None:
    w = Wire()
    w.run(2)
    flips = {"n": 3}

    def damage(b: bytes) -> bytes:
        if flips["n"] and len(b) > 6:
            flips["n"] -= 1
            bb = bytearray(b)
            bb[4] ^= 0x5A
            return bytes(bb)
        return b

    w.to_ctrl = damage
    n = w.count()
    for i in range(3):
        w.host.submit(Fire(i, i, i, n + 800 + i, n + 850 + i), w.t)
    w.run(150)
    assert all(w.statuses(i)[-1] == "executed" for i in range(3))
    assert w.core.counters.bad_frames >= 1


def test_watchdog_fault_is_rearmed_and_dropped_commands_resent() -> None:
    w = Wire()
    w.run(2)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 3000, n + 3050), w.t)  # 300 ms ahead
    w.run(2)
    assert w.statuses(1) == ["accepted"]
    saved = w.host.poll
    w.host.poll = lambda now_ns: b""  # type: ignore[method-assign]  # the host hangs: no heartbeats
    w.run(120)
    assert w.core.counters.watchdog_trips == 1 and not w.core.armed
    w.host.poll = saved  # type: ignore[method-assign]
    w.run(5)
    assert w.host.counters["watchdog_faults"] == 1
    assert w.core.armed
    w.run(300)
    assert w.statuses(1) == ["accepted", "executed"]
    assert w.core.counters.executed == 1


def test_reconnect_resends_outstanding_commands() -> None:
    w = Wire()
    w.run(2)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 2000, n + 2050), w.t)
    w.run(2)
    w.host.connection_lost(w.t)
    w.run(10)
    w.host.connection_made(w.t)
    w.run(5)
    assert w.host.counters["resent_after_rearm"] == 1
    assert w.core.counters.duplicates == 1  # the controller still had it: no second pulse
    w.run(250)
    assert w.statuses(1) == ["accepted", "executed"]


def test_cancel_before_and_after_sending() -> None:
    w = Wire()
    w.run(2)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 500, n + 550), w.t)
    w.host.cancel(1, w.t)  # not sent yet: cancelled locally
    w.host.submit(Fire(2, 0, 0, n + 500, n + 550), w.t)
    w.run(2)
    w.host.cancel(2, w.t)
    w.run(2)
    assert w.statuses(1) == ["cancelled"]
    assert w.statuses(2) == ["accepted", "cancelled"]
    w.run(100)
    assert w.core.counters.executed == 0


def test_monitor_never_arms_nor_feeds_the_watchdog() -> None:
    w = Wire()
    w.host = HostSession(SessionConfig(), session_id=5, arm=False)
    w.host.connection_made(w.t)
    w.run(300)
    assert not w.core.armed or w.core.session_id != 5
    assert w.host.counters["heartbeats"] == 0
    assert w.host.status is not None and w.host.sync.best() is not None
