"""The sans-IO Modbus session against the PLC program (``PlcRegisters``), in memory, with made-up time.

Every test checks the exact register transactions the session asks for (golden sequences: addresses,
values, function codes, and when), and the outcomes it reports. Each transaction takes 0.1 ms of fake
time; a ``Wait`` jumps the time to its deadline and runs one PLC scan.
"""

from __future__ import annotations

import itertools

import pytest

from firmware_bridge import registers as rmap
from firmware_bridge.controller import ControllerCore, ControllerLimits
from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.emulators.plc import PlcRegisters
from firmware_bridge.messages import FaultCode, Fire
from firmware_bridge.modbus_actions import (
    Action,
    Connect,
    ModbusLinkConfig,
    ReadRegisters,
    Wait,
    WriteReadRegisters,
    WriteRegister,
    WriteRegisters,
)
from firmware_bridge.modbus_session import ModbusSession

MS = 1_000_000
T0 = 1_000 * MS
SID = 0x12345678
BOOT = 0xCAFEF00D
POLL = ReadRegisters(0, 104)
ARM = WriteRegisters(33, (1, 0x1234, 0x5678))
DISARM = WriteRegisters(33, (2, 0x1234, 0x5678))


def hb(n: int) -> WriteRegister:
    return WriteRegister(32, n)


def at(ms: float) -> int:
    return T0 + round(ms * MS)


class Bench:
    """A session wired to an in-memory PLC; ``online`` False makes every transaction and connection fail."""

    def __init__(self, arm: bool = True, start_count: int = 95_000, queue_capacity: int = 8) -> None:
        self.t = T0
        self.device = FreeRunningDevice(16, 10_000.0, time_ns=lambda: self.t, start_count=start_count)
        self.core = ControllerCore(self.device, ControllerLimits(queue_capacity=queue_capacity, min_lead_us=0))
        self.plc = PlcRegisters(self.core, wall_ns=lambda: self.t, boot_id=BOOT)
        self.session = ModbusSession(ModbusLinkConfig(), SID, arm=arm)
        self.online = True
        self.plc_exceptions: list[int] = []  # codes to answer the next requests with, in order
        self.answers_lost = 0  # the next requests reach the PLC, which carries them out; their answers never come back
        self.log: list[tuple[float, Action]] = []

    def step(self) -> Action:
        s = self.session
        a = s.next_action(self.t)
        self.log.append((round((self.t - T0) / MS, 1), a))
        if isinstance(a, Wait):
            self.t = max(self.t, a.until_ns)
            self.plc.tick()
        elif isinstance(a, Connect):
            s.connect_result(self.online, self.t)
        else:
            t_sent, self.t = self.t, self.t + 100_000
            if not self.online:
                s.no_answer("timed out", self.t)
                return a
            if self.plc_exceptions:
                s.refused(self.plc_exceptions.pop(0), self.t)
                return a
            lost = self.answers_lost > 0
            self.answers_lost -= int(lost)
            if isinstance(a, ReadRegisters):
                r = self.plc.read_registers(a.address, a.count)
            elif isinstance(a, WriteRegister):
                r = self.plc.write_registers(a.address, [a.value]) or []
            elif isinstance(a, WriteRegisters):
                r = self.plc.write_registers(a.address, list(a.values)) or []
            else:
                r = self.plc.write_registers(a.write_address, list(a.values))
                r = self.plc.read_registers(a.read_address, a.read_count) if r is None else r
            if lost:
                s.no_answer("timed out", self.t)
            elif isinstance(r, int):
                s.refused(r, self.t)
            else:
                s.answered(r, t_sent, self.t)
        return a

    def run_until(self, t_ns: int) -> list[tuple[float, Action]]:
        n = len(self.log)
        while self.t < t_ns:
            self.step()
        return self.log[n:]

    def steps(self, n: int) -> list[tuple[float, Action]]:
        for _ in range(n):
            self.step()
        return self.log[-n:]


def transactions(log: list[tuple[float, Action]]) -> list[tuple[float, Action]]:
    return [(t, a) for t, a in log if not isinstance(a, Wait)]


def test_connect_arm_heartbeat_and_idle_polls() -> None:
    b = Bench()
    assert b.steps(5) == [(0.0, Connect()), (0.0, POLL), (0.1, ARM), (0.2, hb(1)), (0.3, Wait(at(25)))]
    assert b.session.ready() and b.plc.core.session_id == SID
    # heartbeat every 25 ms, the idle poll every 50 ms (measured from the poll before arming)
    assert b.run_until(at(101)) == [
        (25.0, hb(2)),
        (25.1, Wait(at(50))),
        (50.0, hb(3)),
        (50.1, POLL),
        (50.2, Wait(at(75))),
        (75.0, hb(4)),
        (75.1, Wait(at(100))),
        (100.0, hb(5)),
        (100.1, POLL),
        (100.2, Wait(at(125))),
    ]
    assert b.session.counters["heartbeats"] == 5 and b.session.counters["polls"] == 3


def test_a_command_is_one_fc23_with_the_slot_of_protocol_md_then_polled_until_executed() -> None:
    b = Bench()
    b.steps(4)
    b.session.submit(Fire(70, 12, 15, 100_000, 100_450), b.t)  # a submission ends the wait: written at once
    # PROTOCOL.md 6.4: FIRE id 70 goes to slot 6 (registers 344..367): write 344 x 14 (epoch 1 last), read back 358 x 10
    slot_write = WriteReadRegisters(344, (0, 70, 1, 12, 15, 0, 0, 1, 0x86A0, 0, 0, 1, 0x8862, 1), 358, 10)
    assert b.steps(2) == [(0.3, slot_write), (0.4, Wait(at(25)))]
    assert [e.status for e in b.session.take_events()] == ["accepted"]
    # outstanding: polled every 5 ms; the valves close at count 100450 (545 ms): the next poll sees EXECUTED
    log = b.run_until(at(560))
    polls = [t for t, a in log if a == POLL]
    assert polls[:3] == [50.1, 55.1, 60.1] and all(4.9 <= t2 - t1 <= 5.1 for t1, t2 in itertools.pairwise(polls))
    assert [(t, a) for t, a in transactions(log) if a != POLL and not isinstance(a, WriteRegister)] == [
        (545.2, ReadRegisters(344, 24))
    ]
    (ev,) = b.session.take_events()
    assert (ev.command_id, ev.status, ev.open_count, ev.close_count) == (70, "executed", 100_000, 100_450)
    assert b.session.outstanding() == 0 and b.session.counters["sent"] == 1


def test_busy_slot_backs_off_doubling_then_writes_again() -> None:
    b = Bench(queue_capacity=1)
    b.steps(4)
    first, second = Fire(1, 0, 0, 99_000, 99_100), Fire(2, 1, 1, 100_000, 100_100)  # 400 ms and 500 ms ahead
    b.session.submit(first, b.t)
    b.session.submit(second, b.t)
    w1 = WriteReadRegisters(224, tuple(rmap.encode_slot(first, 1)), 238, 10)
    w2 = WriteReadRegisters(248, tuple(rmap.encode_slot(second, 1)), 262, 10)
    # the PLC's queue holds one command: the second write is answered with exception 6 (busy), then retried after
    # 2, 4, 8, 16... ms of pause
    assert b.run_until(at(31)) == [
        (0.3, w1),
        (0.4, w2),
        (0.5, Wait(at(2.5))),
        (2.5, w2),
        (2.6, Wait(at(6.6))),
        (6.6, w2),
        (6.7, Wait(at(14.7))),
        (14.7, w2),
        (14.8, Wait(at(25))),
        (25.0, hb(2)),
        (25.1, Wait(at(30.8))),
        (30.8, w2),
        (30.9, Wait(at(50))),
    ]
    assert b.session.counters["nak_queue_full"] == 5 and b.session.counters["backoffs"] == 5
    b.run_until(at(600))
    assert [(e.command_id, e.status) for e in b.session.take_events()] == [
        (1, "accepted"),
        (1, "executed"),
        (2, "accepted"),
        (2, "executed"),
    ]


def test_cancel_is_a_fc23_on_the_cancel_registers() -> None:
    b = Bench()
    b.steps(4)
    b.session.submit(Fire(9, 0, 0, 99_000, 99_100), b.t)
    b.steps(2)
    b.session.cancel(9, b.t)
    assert b.steps(3) == [(25.0, hb(2)), (25.1, WriteReadRegisters(36, (0, 9), 38, 1)), (25.2, Wait(at(50)))]
    assert [(e.status, e.detail) for e in b.session.take_events()] == [("accepted", ""), ("cancelled", "cancelled by the PLC")]
    assert not b.plc.core.is_pending(9)


def test_cancel_before_writing_never_reaches_the_plc() -> None:
    b = Bench()
    b.steps(2)  # connected, poll sent: the next command is taken at the next cycle
    b.session.submit(Fire(9, 0, 0, 99_000, 99_100), b.t)
    b.session.cancel(9, b.t)
    log = b.run_until(at(60))
    assert all(not isinstance(a, WriteReadRegisters) for _t, a in log)
    assert [(e.status, e.detail) for e in b.session.take_events()] == [("cancelled", "cancelled before sending")]


def test_late_answer_and_the_late_floor() -> None:
    b = Bench()
    b.steps(4)  # the poll before arming read count 95000
    late, earlier = Fire(3, 0, 0, 95_300, 95_600), Fire(4, 0, 0, 95_200, 95_500)
    b.session.submit(late, b.t)
    b.session.submit(earlier, b.t)
    b.t = at(40)  # the belt ran 400 counts while this host was busy
    assert b.steps(3) == [
        (40.0, hb(2)),
        (40.1, WriteReadRegisters(272, tuple(rmap.encode_slot(late, 1)), 286, 10)),
        (40.2, Wait(at(50))),
    ]
    # the PLC refused 3 as late, so 4 (earlier on the belt) is late too and never written
    assert [(e.command_id, e.status, e.detail) for e in b.session.take_events()] == [
        (3, "late", "PLC refused: LATE"),
        (4, "late", "position passed before it could be sent"),
    ]
    assert b.session.counters["late_local"] == 1 and b.session.counters["sent"] == 1


def test_no_answer_reconnects_with_doubling_backoff_and_rearms() -> None:
    b = Bench()
    b.steps(4)
    b.online = False
    assert b.steps(7) == [
        (0.3, Wait(at(25))),
        (25.0, hb(2)),  # no answer: the transport has closed the connection
        (25.1, Connect()),
        (25.1, Wait(at(75.1))),
        (75.1, Connect()),
        (75.1, Wait(at(175.1))),
        (175.1, Connect()),
    ]
    assert b.session.counters["timeouts"] == 1 and b.session.counters["reconnects"] == 1
    assert b.plc.core.fault == FaultCode.WATCHDOG  # no heartbeat for 175 ms
    b.t = at(200)
    b.online = True
    cmd = Fire(5, 0, 0, 100_000, 100_100)
    b.session.submit(cmd, b.t)  # a submission is worth a reconnection attempt at once
    assert b.steps(6) == [
        (200.0, Connect()),
        (200.0, POLL),
        (200.1, ARM),
        (200.2, hb(3)),
        (200.3, WriteReadRegisters(320, tuple(rmap.encode_slot(cmd, 1)), 334, 10)),
        (200.4, Wait(at(205))),
    ]
    assert b.session.counters["rearms"] == 0  # the lost connection had already disarmed it in the session's view


def test_watchdog_fault_is_rearmed_and_the_dropped_command_written_again() -> None:
    b = Bench()
    b.steps(4)
    cmd = Fire(11, 2, 2, 100_000, 100_100)
    b.session.submit(cmd, b.t)
    b.steps(2)
    assert [e.status for e in b.session.take_events()] == ["accepted"]
    b.t = at(150)  # the host hung for 150 ms: no heartbeat
    b.plc.tick()
    assert b.plc.core.fault == FaultCode.WATCHDOG
    write = WriteReadRegisters(464, tuple(rmap.encode_slot(cmd, 1)), 478, 10)
    assert b.steps(8) == [
        (150.0, hb(2)),
        (150.1, POLL),  # the poll shows the fault and the DROPPED slot: re-armed at once
        (150.2, POLL),
        (150.3, ARM),
        (150.4, hb(3)),
        (150.5, write),
        (150.6, Wait(at(155.2))),
        (155.2, POLL),
    ]
    assert b.session.counters["rearms"] == 1 and b.session.counters["watchdog_faults"] == 1
    assert b.plc.core.is_pending(11) and b.session.take_events() == []


def test_a_monitor_only_reads() -> None:
    b = Bench(arm=False)
    log = b.run_until(at(200))
    assert {type(a) for _t, a in log} == {Connect, ReadRegisters, Wait}
    assert [t for t, a in log if a == POLL] == [0.0, 50.0, 100.0, 150.0]
    assert b.session.ready() and b.plc.core.session_id != SID


def test_disarm_on_request() -> None:
    b = Bench()
    b.steps(4)
    b.session.request_disarm(b.t)
    assert b.steps(2) == [(0.3, DISARM), (0.4, Wait(at(50.4)))]
    assert not b.session.armed and not b.session.disarm_requested


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 200])
def test_an_exception_to_the_poll_is_counted_survived_and_retried_after_a_pause(code: int) -> None:
    b = Bench()
    b.step()
    assert b.session.next_action(b.t) == POLL
    b.session.refused(code, b.t)
    assert b.session.counters["exceptions"] == 1 and b.session.counters[f"exception_{code}"] == 1
    assert not b.session.up(b.t) and f"exception {code}" in (b.session.down_reason or "")
    # the poll again after 2 ms, then ARM as usual: up again
    assert b.steps(5) == [(0.0, Wait(at(2))), (2.0, POLL), (2.1, ARM), (2.2, hb(1)), (2.3, Wait(at(27)))]
    assert b.session.down_reason is None
    # still reported down for a second after the fault (a once-a-second health check sees it), then up
    assert not b.session.up(b.t) and b.session.health_reason(b.t).startswith(f"recovered from: PLC answered exception {code}")
    assert b.session.up(at(1000)) and b.session.health_reason(at(1000)) == ""


def test_exceptions_on_every_transaction_back_off_doubling_and_the_link_lives_on() -> None:
    b = Bench()
    b.steps(4)
    b.plc_exceptions = [4] * 5  # the PLC answers the next 5 requests with exception 4
    # paused 2, 4, 8, 16 ms, then the heartbeat period (25 ms) at most: the watchdog is fed as soon as it can be
    assert transactions(b.run_until(at(81))) == [
        (25.0, hb(2)),
        (27.1, hb(3)),
        (31.2, hb(4)),
        (39.3, hb(5)),
        (55.4, hb(6)),
        (80.5, hb(7)),
        (80.6, POLL),
    ]
    assert b.session.counters["exception_4"] == 5 and b.session.down_reason is None
    cmd = Fire(5, 0, 0, 100_000, 100_100)
    b.session.submit(cmd, b.t)
    b.run_until(at(600))
    assert [e.status for e in b.session.take_events()] == ["accepted", "executed"]


@pytest.mark.parametrize("code", [1, 4, 5, 7, 8, 9, 10, 11])
def test_an_exception_to_a_command_write_writes_it_again_then_gives_up(code: int) -> None:
    b = Bench()
    b.steps(4)
    cmd = Fire(5, 0, 0, 100_000, 100_100)
    b.plc_exceptions = [code] * 10
    b.session.submit(cmd, b.t)
    b.run_until(at(400))
    # 1 write and 3 rewrites refused: rejected, then cancelled in case the PLC has it
    assert [(e.status, e.detail) for e in b.session.take_events()] == [("rejected", "no answer after 4 writes")]
    assert b.session.counters["sent"] == 4 and b.session.up(b.t + 1000 * MS)


def test_a_write_whose_answer_was_lost_is_never_called_late_while_the_plc_fires_it() -> None:
    """The PLC took the command; its answer was lost and the position passed while the link reconnected."""
    b = Bench()
    b.steps(4)  # the poll before arming read count 95000
    b.session.submit(Fire(5, 0, 0, 95_300, 95_800), b.t)  # opens 30 ms ahead, closes 80 ms ahead
    b.answers_lost = 1
    while b.answers_lost:  # the write reaches the PLC, its answer is lost
        b.step()
    b.online = False  # and the PLC cannot be reached again until its position has passed (within its watchdog)
    b.run_until(at(50))
    b.online = True
    b.run_until(at(200))
    assert b.core.counters.executed == 1
    assert [e.status for e in b.session.take_events()] == ["accepted", "executed"]
    assert b.session.counters["late_local"] == 0 and b.session.counters["reconnects"] == 1


@pytest.mark.parametrize("code", [2, 3])
def test_illegal_address_or_value_to_a_command_write_rejects_it_with_the_code(code: int) -> None:
    b = Bench()
    b.steps(4)
    b.plc_exceptions = [code]
    b.session.submit(Fire(5, 0, 0, 100_000, 100_100), b.t)
    b.steps(2)
    (ev,) = b.session.take_events()
    assert ev.status == "rejected" and ev.detail.startswith(f"PLC exception {code} (ILLEGAL_DATA_")


def test_another_register_map_drops_the_connection() -> None:
    b = Bench()
    b.step()
    assert b.session.next_action(b.t) == POLL
    b.session.answered([0x1234] + [0] * 103, b.t, b.t + 100_000)
    assert not b.session.connected and b.session.counters["timeouts"] == 1
    assert b.session.next_action(b.t) == Connect()


def test_a_transaction_must_be_answered_first() -> None:
    b = Bench()
    b.step()
    b.session.next_action(b.t)
    with pytest.raises(RuntimeError, match="not been answered"):
        b.session.next_action(b.t)


# ------------------------------------------------------------------ epochs (PROTOCOL.md 4.6)


def test_the_first_poll_learns_boot_id_and_epoch() -> None:
    b = Bench()
    b.steps(4)
    assert (b.session.boot_id, b.session.epoch) == (BOOT, 1)


def test_encoder_reset_finishes_pending_commands_lost_and_never_rewrites_them() -> None:
    b = Bench()
    b.steps(4)
    queued, unsent = Fire(1, 0, 0, 100_000, 100_100), Fire(2, 1, 1, 100_500, 100_600)
    b.session.submit(queued, b.t)
    b.steps(2)  # 1 written and QUEUED; now 25 ms
    b.plc.reset_encoder()  # count 0, epoch 2; slot 1 DROPPED with reason 9; the PLC stays armed
    assert b.plc.read_registers(rmap.STATE_BASE + 1, 1) == [(9 << 8) | int(rmap.SlotState.DROPPED)]
    b.session.submit(unsent, b.t)  # computed in the old epoch, before the host could know: refused by the PLC
    w2 = WriteReadRegisters(248, tuple(rmap.encode_slot(unsent, 1)), 262, 10)
    assert transactions(b.run_until(at(31))) == [(25.0, hb(2)), (25.1, w2), (25.2, POLL)]
    reset = "PLC encoder epoch 1 -> 2 (its count was reset)"
    assert [(e.command_id, e.status, e.detail) for e in b.session.take_events()] == [
        (1, "accepted", ""),
        (2, "lost", "PLC refused it: WRONG_EPOCH (its count was reset)"),
        (1, "lost", reset),
    ]
    log = transactions(b.run_until(at(60)))
    assert [a for _t, a in log if isinstance(a, WriteReadRegisters)] == []  # 1 is never written again
    assert b.session.epoch == 2 and b.session.counters["epoch_changes"] == 1 and b.session.counters["lost"] == 2
    assert b.session.outstanding() == 0 and b.session.down_reason == reset  # re-synchronising
    assert all(s.encoder_count < 1000 for s in b.session.sync._samples)  # the sync restarted
    b.run_until(at(200))
    assert b.session.down_reason is None
    # a new command is written in the new epoch and runs
    fresh = Fire(3, 0, 0, 2_000, 2_100)
    b.session.submit(fresh, b.t)
    assert transactions(b.steps(2)) == [
        (200.0, hb(9)),
        (200.1, WriteReadRegisters(272, tuple(rmap.encode_slot(fresh, 2)), 286, 10)),
    ]
    b.run_until(at(400))
    assert [(e.command_id, e.status) for e in b.session.take_events()] == [(3, "accepted"), (3, "executed")]


def test_a_command_executed_before_the_reset_is_reconciled_from_its_slot() -> None:
    b = Bench()
    b.steps(4)
    done = Fire(4, 0, 0, 95_100, 95_150)  # runs at 10..15 ms
    b.session.submit(done, b.t)
    b.steps(2)  # now 25 ms: executed, not polled yet
    b.plc.reset_encoder()
    b.run_until(at(60))
    assert [(e.command_id, e.status, e.open_count) for e in b.session.take_events()] == [
        (4, "accepted", None),
        (4, "executed", 95_100),
    ]


def test_plc_restart_golden_sequence_lost_then_rearmed_in_the_new_boot() -> None:
    b = Bench()
    b.steps(4)
    b.session.submit(Fire(1, 0, 0, 100_000, 100_100), b.t)
    b.steps(2)  # now 25 ms
    b.plc.power_cycle(boot_id=0x0BAD5EED)  # disarmed, EMPTY slots, count 0, epoch 1
    assert b.run_until(at(51)) == [
        (25.0, hb(2)),
        (25.1, Wait(at(50))),
        (50.0, hb(3)),
        (50.1, POLL),  # new boot id: command 1 lost; not armed for this session: re-armed at once
        (50.2, POLL),
        (50.3, ARM),
        (50.4, hb(4)),
        (50.5, Wait(at(75.2))),
    ]
    assert [(e.status, e.detail) for e in b.session.take_events()] == [
        ("accepted", ""),
        ("lost", "PLC restarted (boot id 0xcafef00d -> 0x0bad5eed)"),
    ]
    assert b.session.counters["plc_restarts"] == 1 and b.session.boot_id == 0x0BAD5EED
    assert b.plc.core.armed and b.plc.core.session_id == SID
    # down until the new odometer sync has a speed (probes 100 ms apart): no position can be computed before
    assert b.session.down_reason == "PLC restarted (boot id 0xcafef00d -> 0x0bad5eed)"
    b.run_until(at(200))
    assert b.session.down_reason is None and b.session.up(at(1100))


def test_a_count_that_jumps_back_without_a_new_epoch_is_treated_as_a_reset_and_cancelled() -> None:
    b = Bench()
    b.steps(4)
    b.session.submit(Fire(1, 0, 0, 100_000, 100_100), b.t)
    b.steps(2)  # now 25 ms
    b.device.set_speed(-1_000_000.0)  # a broken encoder: the count runs back 5000 counts
    b.t = at(30)
    b.device.set_speed(10_000.0)
    log = transactions(b.run_until(at(60)))
    assert log == [(30.0, hb(2)), (50.0, POLL), (50.1, WriteReadRegisters(36, (0, 1), 38, 1)), (55.0, hb(3))]
    assert [(e.status, e.detail) for e in b.session.take_events()] == [
        ("accepted", ""),
        ("lost", "PLC encoder count jumped from 95001 to 90451 in 50 ms without a new epoch"),
    ]
    assert b.session.counters["count_jumps"] == 1 and not b.plc.core.is_pending(1)  # the PLC still held it: cancelled


def test_a_wrong_epoch_answer_loses_the_command_and_polls_at_once() -> None:
    b = Bench()
    b.steps(4)
    b.plc.reset_encoder()  # between two polls: the host still writes epoch 1
    cmd = Fire(1, 0, 0, 100_000, 100_100)
    b.session.submit(cmd, b.t)
    assert b.steps(3) == [
        (0.3, WriteReadRegisters(224, tuple(rmap.encode_slot(cmd, 1)), 238, 10)),
        (0.4, POLL),
        (0.5, Wait(at(25))),
    ]
    assert [(e.status, e.detail) for e in b.session.take_events()] == [
        ("lost", "PLC refused it: WRONG_EPOCH (its count was reset)"),
    ]
    assert b.session.epoch == 2 and not b.plc.core.is_pending(1)


def test_a_plc_of_map_version_1_stops_the_session_with_a_clear_error() -> None:
    b = Bench()
    b.plc.map_version = 1
    b.session.submit(Fire(1, 0, 0, 100_000, 100_100), b.t)
    assert b.steps(3) == [(0.0, Connect()), (0.0, POLL), (0.1, Wait(at(1000.1)))]
    err = b.session.error or ""
    assert "version 1" in err and "needs version 2" in err and "update the PLC program" in err
    assert [(e.status, e.detail) for e in b.session.take_events()] == [("rejected", err)]
    assert not b.session.ready() and b.session.down_reason == err and not b.plc.core.armed
    b.session.submit(Fire(2, 0, 0, 100_000, 100_100), b.t)
    assert b.steps(1) == [(1000.1, Wait(at(2000.1)))]
    assert [e.status for e in b.session.take_events()] == ["rejected"]


def test_unknown_slot_state_is_named_given_up_and_cancelled() -> None:
    b = Bench()
    b.steps(4)
    b.session.submit(Fire(1, 0, 0, 100_000, 100_100), b.t)
    b.steps(2)
    b.plc._slots[1].result = rmap.SlotResult(42, 0, 0, 0)  # a newer PLC's state
    b.run_until(at(60))
    ev = b.session.take_events()
    assert [(e.status, e.detail) for e in ev][1:] == [("rejected", "PLC slot state unknown(42)")]
    assert b.session.counters["unknown_states"] == 1 and not b.plc.core.is_pending(1)
