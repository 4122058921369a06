"""Epochs on the serial link, sans-IO: the host session against the controller's firmware logic.

A controller restart (new boot id), an encoder reset (new epoch), a count that
jumps without a new epoch, a version-1 controller and hostile replies, each
with made-up time: every command ends in exactly one outcome, nothing of an old
epoch is ever resent or executed, and the session keeps working afterwards.
"""

from __future__ import annotations

from collections import Counter

from test_bridge_host_session import MS, Wire

from firmware_bridge.cobs import cobs_encode
from firmware_bridge.codec import encode_frame
from firmware_bridge.controller import ControllerCore, ControllerLimits
from firmware_bridge.crc import crc16_ccitt
from firmware_bridge.emulators.valve_controller import ValveControllerProtocol
from firmware_bridge.epochs import EpochTracker
from firmware_bridge.host_session import SessionConfig
from firmware_bridge.messages import Fire, Nak, Status

FINAL = ("executed", "late", "rejected", "cancelled", "lost")


def outcomes(w: Wire, cids: range) -> Counter[str]:
    """One final outcome per command (asserted), counted by status."""
    out: Counter[str] = Counter()
    for cid in cids:
        finals = [s for s in w.statuses(cid) if s in FINAL]
        assert len(finals) == 1, (cid, w.statuses(cid))
        out[finals[0]] += 1
    return out


def restart_controller(w: Wire) -> None:
    """The controller resets: a new core (new boot id, disarmed, empty queue) and its count back to 0."""
    w.device.close_all()
    w.device.set_count(0)
    w.core = ControllerCore(w.device, ControllerLimits(queue_capacity=64, min_lead_us=0))
    w.ctrl = ValveControllerProtocol(w.core)


def test_commands_carry_the_epoch_learned_before_arming() -> None:
    w = Wire()
    w.run(3)
    assert w.host.armed and w.host.epochs.epoch == 1 and w.host.epochs.boot_id == w.core.boot_id
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 50, n + 80), w.t)
    assert w.host._q.cmds[1].command.epoch == 1
    w.run(20)
    assert w.statuses(1) == ["accepted", "executed"]


def test_controller_restart_with_pending_commands_loses_them_and_resumes() -> None:
    w = Wire(limits=ControllerLimits(queue_capacity=64, min_lead_us=0))
    w.run(600)  # synced
    n = w.count()
    for i in range(10):  # 1.0 .. 1.9 s ahead
        w.host.submit(Fire(i, 0, 0, n + 10_000 + 1000 * i, n + 10_050 + 1000 * i), w.t)
    w.run(5)
    assert all(w.statuses(i) == ["accepted"] for i in range(10))
    restart_controller(w)
    w.run(600)  # the next PONG/STATUS shows the new boot id
    assert outcomes(w, range(10)) == {"lost": 10}
    assert w.host.counters["epoch_changes"] == 1 and w.host.counters["lost"] == 10
    assert w.core.counters.executed == 0  # nothing of the old epoch ran on the new count
    assert w.host.armed and w.core.armed and w.host.epochs.boot_id == w.core.boot_id
    m = w.count()
    w.host.submit(Fire(20, 1, 1, m + 500, m + 550), w.t)
    w.run(100)
    assert w.statuses(20) == ["accepted", "executed"]


def test_encoder_reset_bumps_the_epoch_and_old_commands_are_lost_never_resent() -> None:
    w = Wire(limits=ControllerLimits(queue_capacity=64, min_lead_us=0))
    w.run(600)
    n = w.count()
    for i in range(5):
        w.host.submit(Fire(i, 0, 0, n + 8000 + 500 * i, n + 8050 + 500 * i), w.t)
    w.run(5)
    sent_before = w.host.counters["sent"]
    w.device.set_count(0)  # an operator re-zeroes the counter: the controller starts epoch 2 and says so
    w.run(2)
    assert w.core.epoch == 2
    assert outcomes(w, range(5)) == {"lost": 5}
    assert w.host.epochs.epoch == 2 and w.host.armed  # still armed: the controller stays ARMED
    assert w.host.counters["sent"] == sent_before  # nothing resent
    w.run(400)
    m = w.count()
    w.host.submit(Fire(9, 0, 0, m + 500, m + 550), w.t)
    w.run(100)
    assert w.statuses(9) == ["accepted", "executed"]
    assert w.core.counters.executed == 1


def test_wrong_epoch_nak_is_lost_and_the_host_learns_the_new_epoch() -> None:
    w = Wire()
    w.run(3)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 500, n + 550, epoch=7), w.t)  # computed in an epoch the controller never had
    w.run(2)
    assert w.statuses(1) == ["lost"]
    assert w.host.counters["nak_wrong_epoch"] == 1 and w.core.counters.executed == 0


def test_count_jump_without_a_new_epoch_is_treated_as_one() -> None:
    w = Wire(cfg=SessionConfig(max_counts_per_s=20_000.0))
    w.run(600)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 50_000_000, n + 50_000_050), w.t)
    w.run(2)
    w.device.set_count(n + 10_000_000)  # forward: the controller does not notice, the host must
    w.run(250)
    assert w.statuses(1) == ["accepted", "lost"]
    assert w.host.counters["epoch_changes"] == 1
    assert not w.core.is_pending(1)  # the host cancelled it on the controller
    assert w.core.counters.executed == 0


def test_submissions_during_resynchronisation_are_lost() -> None:
    w = Wire()
    w.run(600)
    w.device.set_count(0)
    w.run(2)
    w.host.submit(Fire(1, 0, 0, 5000, 5050), w.t)  # may come from the old odometer
    w.run(1)
    assert w.statuses(1) == ["lost"]


def test_version_1_controller_is_refused_with_a_clear_error() -> None:
    w = Wire()
    head = bytes([0x85]) + (5).to_bytes(2, "little") + bytes([1]) + bytes(41)  # a 42-byte version-1 STATUS
    w.host.receive(cobs_encode(head + crc16_ccitt(head).to_bytes(2, "little")) + b"\x00", w.t)
    assert w.host.protocol_error is not None
    assert "protocol version 1; this host needs 2: update its firmware" in w.host.protocol_error
    w.host.submit(Fire(1, 0, 0, 10**6, 10**6 + 50), w.t)
    assert [e.status for e in w.host.take_events()] == ["rejected"]
    assert not w.host.ready() and w.host.poll(w.t) == b""


def test_other_status_version_is_refused() -> None:
    w = Wire()
    st = Status(3, 0, 0, 8, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 1)
    w.host.receive(encode_frame(st, 2), w.t)
    assert w.host.protocol_error is not None and "version 3" in w.host.protocol_error


def test_unknown_nak_reason_rejects_the_command_and_the_session_survives() -> None:
    w = Wire()
    w.run(3)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 2000, n + 2050), w.t)
    w.to_ctrl = lambda b: b""  # the controller never sees it; a NAK with reason 23 comes back instead
    w.run(1)
    w.host.receive(encode_frame(Nak(0xFFFF, 1, 23), 9) + b"\x00\x17garbage\x00" + encode_frame(Nak(3, 0, 9), 10), w.t)
    w.to_ctrl = lambda b: b
    w.events += w.host.take_events()
    assert w.statuses(1) == ["rejected"]
    assert "unknown NAK reason 23" in next(e.detail for e in w.events if e.command_id == 1)
    assert w.host.counters["nak_unknown_reason"] == 1 and w.host.counters["bad_frames"] >= 1
    unknown_type = bytes([0x99]) + (11).to_bytes(2, "little") + b"\x01\x02"
    w.host.receive(cobs_encode(unknown_type + crc16_ccitt(unknown_type).to_bytes(2, "little")) + b"\x00", w.t)
    assert w.host.counters["unknown_types"] == 1
    w.host.submit(Fire(2, 0, 0, n + 3000, n + 3050), w.t)
    w.run(400)
    assert w.statuses(2) == ["accepted", "executed"]


def test_port_lost_beyond_recovery_finishes_everything_as_lost() -> None:
    w = Wire()
    w.run(3)
    n = w.count()
    for i in range(3):
        w.host.submit(Fire(i, 0, 0, n + 50_000, n + 50_050), w.t)
    w.run(2)
    w.host.connection_lost(w.t)
    w.t += 1900 * MS
    w.host.poll(w.t)
    assert w.host.take_events() == []  # still hoping for the port
    w.t += 200 * MS
    w.host.poll(w.t)
    assert [e.status for e in w.host.take_events()] == ["lost"] * 3


def test_port_back_in_time_reconciles_from_the_controller() -> None:
    w = Wire()
    w.run(3)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 3000, n + 3050), w.t)
    w.run(2)
    w.host.connection_lost(w.t)
    w.run(200)  # the controller's watchdog drops it meanwhile
    w.host.connection_made(w.t)
    w.run(300)
    assert w.statuses(1) == ["accepted", "executed"]  # resent in the same epoch, still ahead: it ran on time


def test_epoch_tracker_rules() -> None:
    t = EpochTracker(max_counts_per_s=1000.0, backward_tolerance_counts=10, slack_counts=100)
    assert t.observe(5, 1, 1000, 0, device_time_us=0) is None and t.known()
    assert t.observe(5, 1, 995, 1 * MS) is None  # jitter backwards within tolerance
    assert t.observe(5, 1, 1990, 1000 * MS, device_time_us=1_000_000) is None  # 1000 counts in 1 s: allowed
    assert t.observe(5, 1, 9000, 1001 * MS) is None  # an untimed reading (STATUS) is not judged for speed
    c = t.observe(5, 1, 9000, 1001 * MS, device_time_us=1_001_000)
    assert c is not None and not c.announced and "jumped" in c.reason
    c = t.observe(5, 2, 0, 1002 * MS)
    assert c is not None and c.announced and not c.restarted
    c = t.observe(6, 1, 0, 1003 * MS)
    assert c is not None and c.restarted
    c = t.observe(6, 1, -500, 1004 * MS)
    assert c is not None and "went back" in c.reason
    assert t.changes == 4


def test_count_speed_is_judged_over_the_longer_of_the_host_and_the_controller_spans() -> None:
    t = EpochTracker(max_counts_per_s=10_000.0, slack_counts=100)
    assert t.observe(5, 1, 0, 10 * MS, device_time_us=0, sent_ns=0) is None
    # a reply delayed 300 ms on the host: sent at 200 ms, received at 500 ms; 500 ms of belt on the controller's clock
    assert t.observe(5, 1, 5000, 500 * MS, device_time_us=500_000, sent_ns=200 * MS) is None
    # an encoder on simulated time: 2 s of belt while the host saw 10 ms
    assert t.observe(5, 1, 25_000, 510 * MS, device_time_us=2_500_000, sent_ns=505 * MS) is None
    # slow controller clock, fast host: the host's span (from sending the last request) bounds the move
    assert t.observe(5, 1, 31_000, 1100 * MS, device_time_us=2_500_010, sent_ns=1000 * MS) is None
    # the count moves 50,000 counts in 100 ms on both clocks: a jump, and the next timed reading starts afresh
    c = t.observe(5, 1, 81_000, 1200 * MS, device_time_us=2_600_010, sent_ns=1150 * MS)
    assert c is not None and not c.announced and "jumped from 31000 to 81000" in c.reason
    assert t.observe(5, 1, 82_000, 1300 * MS, device_time_us=2_700_010, sent_ns=1250 * MS) is None
    assert t.changes == 1


def test_a_belt_at_speed_is_no_jump_and_a_forward_jump_is_lost_and_cancelled() -> None:
    w = Wire(cfg=SessionConfig(max_counts_per_s=30_000.0))  # the belt runs at 10,000 counts/s
    w.run(600)
    n = w.count()
    w.host.submit(Fire(1, 0, 0, n + 100_000, n + 100_050), w.t)
    w.run(400)  # 400 ms of PONGs at the belt's speed: no jump
    assert w.host.counters["epoch_changes"] == 0 and w.statuses(1) == ["accepted"]
    w.device.set_count(w.count() + 20_000)  # 2 s of belt at once, still short of the command
    w.run(250)
    assert w.statuses(1) == ["accepted", "lost"] and w.host.counters["epoch_changes"] == 1
    assert not w.core.is_pending(1) and w.core.counters.executed == 0
