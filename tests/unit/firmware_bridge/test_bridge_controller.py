"""The controller's command logic (shared by both emulators), on the built-in device with a hand-moved clock."""

from __future__ import annotations

from firmware_bridge.controller import ControllerCore, ControllerLimits
from firmware_bridge.device import Execution, FreeRunningDevice
from firmware_bridge.messages import AckResult, FaultCode, Fire, NakReason, Pick, StatusFlags

MS = 1_000_000


class FakeTime:
    """Monotonic nanoseconds moved by the test."""

    def __init__(self) -> None:
        self.t = 1_000 * MS

    def __call__(self) -> int:
        return self.t

    def advance_ms(self, ms: float) -> None:
        self.t += round(ms * MS)


def make(limits: ControllerLimits | None = None, speed: float = 10_000.0) -> tuple[ControllerCore, FreeRunningDevice, FakeTime]:
    t = FakeTime()
    dev = FreeRunningDevice(valve_count=8, speed_counts_per_s=speed, time_ns=t)  # 10 counts per ms
    core = ControllerCore(
        dev, limits or ControllerLimits(queue_capacity=4, min_lead_us=0, min_pulse_us=1000, max_pulse_us=50_000)
    )
    core.arm(session_id=1, wall_ns=t())
    return core, dev, t


def test_refused_until_armed() -> None:
    t = FakeTime()
    core = ControllerCore(FreeRunningDevice(8, 10_000.0, time_ns=t))
    o = core.submit(Fire(1, 0, 0, 100, 200))
    assert not o.accepted and o.code == NakReason.NOT_ARMED
    core.arm(5, t())
    assert core.submit(Fire(1, 0, 0, 100, 200)).code == AckResult.QUEUED
    assert core.status().flags & StatusFlags.ARMED


def test_fire_executes_at_exact_counts_and_reports_once() -> None:
    core, dev, t = make()
    assert core.submit(Fire(1, 2, 4, 100, 300)).code == AckResult.QUEUED
    t.advance_ms(12)  # count 120: open
    done, fault = core.tick(t())
    assert done == [] and fault is None
    assert dev.open_valve_count() == 3
    t.advance_ms(20)  # count 320: closed
    done, _ = core.tick(t())
    assert done == [Execution(1, "fire", 100, 300)]
    assert dev.open_valve_count() == 0
    assert core.counters.executed == 1
    assert core.tick(t())[0] == []


def test_late_and_bad_fields_are_refused_with_reasons() -> None:
    core, _dev, t = make()
    t.advance_ms(10)  # count 100
    assert core.submit(Fire(1, 0, 0, 100, 200)).code == NakReason.LATE
    assert core.submit(Fire(2, 0, 8, 200, 300)).code == NakReason.BAD_FIELD  # valve 8 of 0..7
    assert core.submit(Fire(3, 3, 2, 200, 300)).code == NakReason.BAD_FIELD  # first > last
    assert core.submit(Fire(4, 0, 0, 300, 300)).code == NakReason.BAD_FIELD  # close == open
    assert core.submit(Fire(5, 0, 0, 1 << 50, (1 << 50) + 10)).code == NakReason.BAD_FIELD  # too far ahead
    assert core.counters.late == 1 and core.counters.rejected == 4
    assert core.queue_len() == 0


def test_min_lead_refuses_commands_too_close_to_now() -> None:
    core, _dev, _t = make(ControllerLimits(min_lead_us=2000))  # 2 ms = 20 counts at 10 counts/ms
    assert core.submit(Fire(1, 0, 0, 15, 100)).code == NakReason.LATE
    assert core.submit(Fire(2, 0, 0, 25, 100)).code == AckResult.QUEUED


def test_queue_full_then_space_after_execution() -> None:
    core, _dev, t = make()
    for i in range(4):
        assert core.submit(Fire(i, 0, 0, 100 + i, 120 + i)).code == AckResult.QUEUED
    assert core.submit(Fire(9, 0, 0, 500, 520)).code == NakReason.QUEUE_FULL
    t.advance_ms(20)
    done, _ = core.tick(t())
    assert len(done) == 4
    assert core.submit(Fire(9, 0, 0, 500, 520)).code == AckResult.QUEUED


def test_same_id_is_idempotent_and_conflicts_are_refused() -> None:
    core, _dev, t = make()
    f = Fire(7, 1, 1, 100, 200)
    assert core.submit(f).code == AckResult.QUEUED
    assert core.submit(f).code == AckResult.DUPLICATE
    assert core.submit(Fire(7, 1, 2, 100, 200)).code == NakReason.CONFLICT
    t.advance_ms(25)
    core.tick(t())
    o = core.submit(f)  # a retransmission after it executed: not fired twice
    assert o.accepted and o.code == AckResult.DONE
    assert core.execution_of(7) == Execution(7, "fire", 100, 200)
    t.advance_ms(25)
    assert core.tick(t())[0] == []
    assert core.counters.executed == 1


def test_pulse_width_is_clamped() -> None:
    core, _dev, t = make()  # min 1 ms = 10 counts, max 50 ms = 500 counts
    core.submit(Fire(1, 0, 0, 100, 102))
    core.submit(Fire(2, 1, 1, 100, 5000))
    t.advance_ms(70)
    done = sorted(core.tick(t())[0], key=lambda e: e.command_id)
    assert done == [Execution(1, "fire", 100, 110), Execution(2, "fire", 100, 600)]
    assert core.counters.clamped == 2


def test_watchdog_closes_valves_drops_queue_and_latches_until_rearm() -> None:
    core, dev, t = make(ControllerLimits(min_lead_us=0, max_pulse_us=1_000_000))
    core.submit(Fire(1, 0, 3, 100, 5000))  # a long pulse, open when the watchdog trips
    core.submit(Fire(2, 5, 5, 3000, 3050))  # not started when the watchdog trips
    t.advance_ms(15)
    core.heartbeat(t())
    core.tick(t())
    assert dev.open_valve_count() == 4
    t.advance_ms(99)
    assert core.tick(t()) == ([], None)  # 99 ms without heartbeat: still fine
    t.advance_ms(2)
    done, fault = core.tick(t())
    assert fault == FaultCode.WATCHDOG
    assert dev.open_valve_count() == 0
    assert [e.command_id for e in done] == [1]  # the open pulse is reported, cut short
    assert done[0].close_count == 1160  # closed at the count of the trip (116 ms x 10 counts/ms)
    assert core.queue_len() == 0
    assert not core.armed and core.fault == FaultCode.WATCHDOG
    assert core.status().flags & StatusFlags.FAULTED
    assert core.submit(Fire(3, 0, 0, 5000, 5100)).code == NakReason.NOT_ARMED
    # re-arm (same session): the dropped command can be sent again, the executed one cannot run twice
    core.arm(1, t())
    assert core.submit(Fire(1, 0, 3, 100, 5000)).code == AckResult.DONE  # executed (cut short): never again
    assert core.submit(Fire(2, 5, 5, 3000, 3050)).code == AckResult.QUEUED  # dropped: may be sent again
    t.advance_ms(200)
    core.heartbeat(t())
    assert core.submit(Fire(3, 5, 5, 1000, 1050)).code == NakReason.LATE  # passed: refused, never fired late
    assert core.counters.watchdog_trips == 1


def test_new_session_forgets_ids_and_queue() -> None:
    core, _dev, t = make()
    core.submit(Fire(1, 0, 0, 100, 200))
    core.arm(2, t())
    assert core.queue_len() == 0
    assert core.submit(Fire(1, 0, 0, 300, 400)).code == AckResult.QUEUED  # id 1 reused by the new session


def test_cancel() -> None:
    core, _dev, t = make()
    core.submit(Fire(1, 0, 0, 100, 200))
    core.submit(Fire(2, 0, 0, 150, 400))
    assert core.cancel(1).code == AckResult.CANCELLED
    assert core.cancel(1).code == AckResult.CANCELLED  # idempotent
    assert core.cancel(99).code == AckResult.UNKNOWN_ID
    t.advance_ms(20)
    core.tick(t())
    assert core.cancel(2).code == AckResult.UNKNOWN_ID  # already blowing: cannot be cancelled
    t.advance_ms(30)
    done, _ = core.tick(t())
    assert [e.command_id for e in done] == [2]


def test_pick_executes_at_its_count() -> None:
    core, _dev, t = make()
    assert core.submit(Pick(3, 1000, 2000, 150)).code == AckResult.QUEUED
    t.advance_ms(16)
    assert core.tick(t())[0] == [Execution(3, "pick", 150, 150)]


def test_disarm_closes_everything() -> None:
    core, dev, t = make()
    core.submit(Fire(1, 0, 7, 100, 400))
    t.advance_ms(15)
    core.tick(t())
    assert dev.open_valve_count() == 8
    cut = core.disarm()
    assert [e.command_id for e in cut] == [1]
    assert dev.open_valve_count() == 0 and not core.armed


def test_epochs_boot_id_and_wrong_epoch() -> None:
    core, dev, _t = make()
    st = core.status()
    assert st.version == 2 and st.epoch == 1 and st.boot_id == core.boot_id != 0
    assert core.submit(Fire(1, 0, 0, 500, 600, epoch=1)).code == AckResult.QUEUED
    assert core.submit(Fire(2, 0, 0, 500, 600, epoch=2)).code == NakReason.WRONG_EPOCH
    assert ControllerCore(dev).boot_id != core.boot_id  # a restart draws a new boot id


def test_count_reset_starts_a_new_epoch_and_drops_the_queue() -> None:
    core, dev, t = make()
    core.submit(Fire(1, 0, 0, 100, 400, epoch=1))  # open when the count is reset
    core.submit(Fire(2, 1, 1, 3000, 3100, epoch=1))  # queued
    t.advance_ms(20)
    core.tick(t())
    dev.set_count(0)
    done, fault = core.tick(t())
    assert fault is None and core.epoch == 2 and core.armed  # stays armed
    assert [e.command_id for e in done] == [1]  # cut short at the reset, reported as run (it opened on time)
    assert core.take_epoch_changes() == [(2, 0)]
    assert core.queue_len() == 0 and dev.open_valve_count() == 0
    assert core.submit(Fire(2, 1, 1, 3000, 3100, epoch=1)).code == NakReason.WRONG_EPOCH  # never taken as a retry
    assert core.submit(Fire(2, 1, 1, 3000, 3100, epoch=2)).code == AckResult.QUEUED  # dropped, not in the history
    t.advance_ms(400)
    done, _ = core.tick(t())
    assert [(e.command_id, e.open_count) for e in done] == [(2, 3000)]


def test_a_reset_seen_by_a_submission_is_refused_at_once() -> None:
    core, dev, t = make()
    t.advance_ms(10)
    core.tick(t())  # the controller has seen count 100
    dev.set_count(0)  # no tick in between: the submission itself reads the count
    assert core.submit(Fire(1, 0, 0, 500, 600, epoch=1)).code == NakReason.WRONG_EPOCH
    assert core.epoch == 2
