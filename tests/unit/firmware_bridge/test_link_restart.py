"""A link restarted within the same host run asks the controller what became of the commands it was left.

The first link arms the controller, sends commands and dies without a word (its memory
gone, as when its process is killed). The controller's watchdog trips meanwhile: what
already ran stays in its record, what was queued is dropped. A new link under the same
session id adopts every command left without an outcome, each as it was sent (epoch
stamped) with the controller's boot id then, and must report what the controller did,
never a guess: executed (with the counts it fired at), queued anew while still ahead,
late when it never ran and its position has passed, lost when its boot id or epoch ended;
each once, and nothing fired twice. Sans-IO, on made-up time, against the controller's
own logic (serial) and the PLC program (Modbus).
"""

from __future__ import annotations

from test_bridge_host_session import MS, Wire
from test_modbus_session import BOOT, SID, Bench, at

from firmware_bridge import registers as rmap
from firmware_bridge.host_session import HostSession, SessionConfig
from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import Fire
from firmware_bridge.modbus_actions import ModbusLinkConfig, ReadRegisters, WriteReadRegisters
from firmware_bridge.modbus_session import ModbusSession


def finals(events: list[LinkEvent]) -> dict[int, LinkEvent]:
    out: dict[int, LinkEvent] = {}
    for e in events:
        if e.status != "accepted":
            assert e.command_id not in out, f"two outcomes for command {e.command_id}: {out[e.command_id]}, {e}"
            out[e.command_id] = e
    return out


def serial_link_dies(w: Wire, ms: float) -> None:
    """The host is gone for ``ms``: the controller runs on, its reports go nowhere."""
    for _ in range(round(ms / 0.5)):
        w.ctrl.tick(w.t)
        w.t += MS // 2


def test_a_restarted_serial_link_reports_what_the_controller_did_with_the_commands_it_was_left() -> None:
    w = Wire(speed=10_000.0)
    w.run(2)
    n, boot = w.count(), w.core.boot_id
    ran = Fire(1, 0, 0, n + 100, n + 130, epoch=1)  # fires 10 ms after the link dies: its report is lost
    queued = Fire(2, 1, 1, n + 5_000, n + 5_050, epoch=1)  # 0.5 s ahead: dropped by the watchdog, still ahead after
    passed = Fire(3, 2, 2, n + 1_000, n + 1_050, epoch=1)  # 0.1 s ahead: dropped, and passed before the new link
    for c in (ran, queued, passed):
        w.host.submit(c, w.t)
    w.run(2)
    assert [e.status for e in w.host.take_events() + w.events] == ["accepted"] * 3
    serial_link_dies(w, 300)
    assert w.core.execution_of(1) is not None and w.core.counters.watchdog_trips == 1 and w.core.queue_len() == 0

    w.host = HostSession(SessionConfig(), session_id=99)  # the same session: the controller keeps its record
    w.events = []
    w.host.connection_made(w.t)
    never_sent = Fire(4, 3, 3, n + 6_000, n + 6_050, epoch=1)  # still ahead: the controller queues it now
    other_boot = Fire(5, 4, 4, n + 7_000, n + 7_050, epoch=1)
    old_epoch = Fire(6, 5, 5, n + 8_000, n + 8_050, epoch=7)
    for c, b in ((ran, boot), (queued, boot), (passed, boot), (never_sent, boot), (other_boot, boot ^ 1), (old_epoch, boot)):
        w.host.adopt(c, b, w.t)
    w.run(10)
    got = finals(w.events)
    assert (got[1].status, got[1].open_count, got[1].close_count) == ("executed", n + 100, n + 130)
    assert got[3].status == "late" and got[3].detail == "controller NAK LATE"
    assert got[5].status == "lost" and "restarted" in got[5].detail
    assert got[6].status == "lost" and "epoch 7 ended" in got[6].detail
    assert 2 not in got and 4 not in got and w.core.is_pending(2) and w.core.is_pending(4)  # tracked on
    w.run(500)
    got = finals(w.events)
    assert (got[2].status, got[2].open_count) == ("executed", n + 5_000)
    assert (got[4].status, got[4].open_count) == ("executed", n + 6_000)
    assert w.core.counters.executed == 3 and w.host.outstanding() == 0  # the first one fired once, not twice
    assert w.host.counters["adopted"] == 6


def test_an_adopted_serial_command_cancelled_before_the_link_is_up_is_cancelled_behind_its_query() -> None:
    w = Wire(speed=10_000.0)
    w.run(2)
    n, boot = w.count(), w.core.boot_id
    held = Fire(1, 0, 0, n + 5_000, n + 5_050, epoch=1)
    w.host.submit(held, w.t)
    w.run(2)
    w.host = HostSession(SessionConfig(), session_id=99)  # restarted before the watchdog: the command is still queued
    w.events = []
    w.host.adopt(held, boot, w.t)
    w.host.cancel(1, w.t)  # the controller holds it: never finished locally
    assert w.host.outstanding() == 1
    w.host.connection_made(w.t)
    w.run(600)
    assert [(e.status, e.detail) for e in w.events] == [("accepted", ""), ("cancelled", "cancelled by the controller")]
    assert w.core.counters.executed == 0 and not w.core.is_pending(1)


def modbus_link_dies(b: Bench, ms: float) -> None:
    """The host is gone for ``ms``: the PLC scans on."""
    for _ in range(round(ms)):
        b.t += MS
        b.plc.tick()


def test_a_restarted_modbus_link_reads_each_slot_and_reports_what_the_plc_did() -> None:
    b = Bench(start_count=95_000, queue_capacity=8)
    b.steps(4)
    ran = Fire(1, 0, 0, 95_300, 95_330, epoch=1)  # fires 30 ms in: its slot says EXECUTED
    queued = Fire(2, 1, 1, 100_000, 100_050, epoch=1)  # dropped by the watchdog, still ahead
    passed = Fire(3, 2, 2, 97_000, 97_050, epoch=1)  # dropped by the watchdog (100 ms in), passed before the new link
    for c in (ran, queued, passed):
        b.session.submit(c, b.t)
    b.steps(4)
    assert [e.status for e in b.session.take_events()] == ["accepted"] * 3
    modbus_link_dies(b, 300)
    assert b.core.counters.watchdog_trips == 1 and b.core.execution_of(1) is not None

    b.session = ModbusSession(ModbusLinkConfig(), SID)
    other_boot = Fire(5, 4, 4, 101_000, 101_050, epoch=1)
    for c, boot in ((ran, BOOT), (queued, BOOT), (passed, BOOT), (other_boot, BOOT ^ 1)):
        b.session.adopt(c, boot, b.t)
    log = b.run_until(b.t + 3 * MS)
    reads = [a for _, a in log if isinstance(a, ReadRegisters) and a.count == rmap.SLOT_SIZE]
    assert reads == [ReadRegisters(rmap.slot_address(s), rmap.SLOT_SIZE) for s in (1, 2, 3)]  # no read for boot ^ 1
    writes = [a for _, a in log if isinstance(a, WriteReadRegisters)]
    assert writes == [WriteReadRegisters(248, tuple(rmap.encode_slot(queued, 1)), 262, 10)]  # dropped, still ahead
    got = finals(b.session.take_events())
    assert (got[1].status, got[1].open_count, got[1].close_count) == ("executed", 95_300, 95_330)
    assert got[3].status == "late" and got[5].status == "lost" and 2 not in got
    b.run_until(at(600))
    got = finals(b.session.take_events())
    assert (got[2].status, got[2].open_count) == ("executed", 100_000)
    assert b.core.counters.executed == 2 and b.session.outstanding() == 0


def test_two_adopted_commands_of_one_slot_the_plc_knows_each_and_no_write_waits_for_ever() -> None:
    b = Bench(start_count=95_000, queue_capacity=8)
    b.steps(4)
    first = Fire(5, 0, 0, 95_100, 95_130, epoch=1)  # slot 5; executes 10 ms in
    second = Fire(69, 1, 1, 97_000, 97_050, epoch=1)  # slot 5 too: written once the first is done
    b.session.submit(first, b.t)
    b.session.submit(second, b.t)
    b.run_until(at(60))  # the first executes at 10 ms; the poll at 50 ms frees its slot for the second
    assert b.core.is_pending(69) and b.core.execution_of(5) is not None
    # the link dies before the first's outcome reached its line: both are adopted, the slot holds only the second
    b.session = ModbusSession(ModbusLinkConfig(), SID)
    b.session.adopt(first, BOOT, b.t)
    b.session.adopt(second, BOOT, b.t)
    b.run_until(b.t + 5 * MS)
    assert [e.status for e in b.session.take_events()] == ["accepted"]  # the second, still queued in its slot
    b.run_until(at(300))
    got = finals(b.session.take_events())
    # the first is asked by writing it again once its slot is free: the PLC's history answers EXECUTED
    assert (got[5].status, got[5].open_count) == ("executed", 95_100)
    assert (got[69].status, got[69].open_count) == ("executed", 97_000)
    assert b.core.counters.executed == 2 and b.session.outstanding() == 0


def test_adopted_modbus_commands_cancelled_before_the_link_is_up_are_cancelled_on_the_plcs_word() -> None:
    b = Bench(start_count=95_000, queue_capacity=8)
    b.steps(4)
    dropped = Fire(1, 0, 0, 100_000, 100_050, epoch=1)
    b.session.submit(dropped, b.t)
    b.steps(2)
    modbus_link_dies(b, 200)  # the watchdog drops it
    held = Fire(2, 1, 1, 100_500, 100_550, epoch=1)  # written just before the new link: queued in the PLC
    assert b.plc.write_registers(rmap.REG_CONTROL, [rmap.CONTROL_ARM, *rmap.u32_to_regs(SID)]) is None  # as the old
    assert b.plc.write_registers(rmap.slot_address(2), rmap.encode_slot(held, 1)) is None  # link did, then it died
    b.session = ModbusSession(ModbusLinkConfig(), SID)
    for c in (dropped, held):
        b.session.adopt(c, BOOT, b.t)
        b.session.cancel(c.command_id, b.t)
    log = b.run_until(b.t + 5 * MS)
    got = finals(b.session.take_events())
    # the slot says DROPPED: never written again, cancelled here; the slot says QUEUED: the PLC cancels it
    assert (got[1].status, got[1].detail) == ("cancelled", "cancelled before sending")
    assert (got[2].status, got[2].detail) == ("cancelled", "cancelled by the PLC")
    assert not [a for _, a in log if isinstance(a, WriteReadRegisters) and a.write_address != rmap.REG_CANCEL_ID]
    assert b.core.queue_len() == 0 and b.core.counters.executed == 0
