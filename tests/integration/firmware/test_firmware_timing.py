"""Timing of the firmware measured at the pins of the emulated board, on emulated time (exact, load-independent).

Targets (2.5 m/s belt, 10 counts/mm = 25000 counts/s): every opening within 1 count of its position, every pin
edge within 10 us of its compare match, the watchdog closing within 100 ms (+1 ms) of the last heartbeat, and
the command-to-position budget. ``scripts/bench_firmware.py`` runs the same scenarios with more commands.
"""

from __future__ import annotations

from pathlib import Path

import fwfixtures
import fwscenarios as sc
from fwboard import Build, Frame, Script, frames, run_script

from sorter.actuate.firmware_board import FirmwareBoard

fw = fwfixtures.fw
identity = fwfixtures.identity
workdir = fwfixtures.workdir


def test_openings_land_on_their_count_and_pins_follow_the_compare(fw: Build, identity: tuple[int, int],
                                                                  workdir: Path) -> None:
    result, events = sc.run_precision(fw, workdir, identity[1], n=400)
    assert result.accepted == result.sent == 400
    assert result.fired == 400
    assert sum(result.open_errors.values()) == 400
    assert result.within(1) >= 0.999, result.open_errors
    assert result.within(0) == 1.0, result.open_errors  # a hardware compare switches on the count itself
    assert result.close_errors == {0: 400}
    assert result.switched_without_match == 0
    assert max(result.latencies_us) <= 10.0
    assert result.report_mismatch == 0  # FIRED reports the counts the pins switched at
    assert result.count_mismatch == 0 and result.unexplained_edges == 0
    summary = next(e for e in events if e["ev"] == "summary")
    assert summary["resets"] == 0


def test_watchdog_closes_within_100_ms_of_the_last_heartbeat(fw: Build, identity: tuple[int, int],
                                                              workdir: Path) -> None:
    trials = sc.run_watchdog(fw, workdir, identity[1], trials=8)
    assert len(trials) == 8
    for t in trials:
        assert 100.0 < t.delay_ms <= 101.0, t
        assert t.fault_sent


def test_command_to_position_budget(fw: Build, identity: tuple[int, int], workdir: Path) -> None:
    leads = [lead for lead in range(4, 45, 2) for _ in range(3)]
    probes = sc.run_lead(fw, workdir, identity[1], leads)
    budget = sc.lead_budget(probes)
    # the frame's 33 bytes take 9 counts on the wire, the firmware adds its processing and 5 counts of minimum lead
    assert budget is not None and 14 <= budget <= 40, budget
    assert not any(p.accepted for p in probes if p.lead_counts <= 9)  # never accepted once it cannot be on time
    assert all(p.open_error == 0 for p in probes if p.accepted)


def test_an_encoder_jump_starts_a_new_epoch(fw: Build, identity: tuple[int, int], workdir: Path) -> None:
    epoch = identity[1]
    s = Script()
    s.send(20_000, "ARM", session_id=sc.SESSION)
    for t in range(30_000, 700_000, 20_000):
        s.send(t, "HEARTBEAT", counter=t)
    # belt at 25000 counts/s from 50 ms; at 200 ms (count 3750) a FIRE for count 10000
    queued = s.send(200_000, "FIRE", command_id=1, valve_first=3, valve_last=3, open_count=10_000,
                    close_count=10_100, epoch=epoch)
    s.command(250_000, "glitch 5000")  # 5000 counts in 10 ms (2 us apart): noise, no belt moves like that
    stale = s.send(400_000, "FIRE", command_id=2, valve_first=4, valve_last=4, open_count=20_000,
                   close_count=20_100, epoch=epoch)
    s.send(450_000, "STATUS_REQUEST")
    events = run_script(fw, workdir, s, sc.profile(25_000), duration_s=0.7)
    tx = [f for _e, f in frames(events, "tx") if isinstance(f, Frame)]
    assert any(f.name == "ACK" and f["acked_seq"] == queued and f["result"] == 0 for f in tx)
    new = [f["epoch"] for f in tx if f.name == "EPOCH"]  # one per 10 ms speed sample that saw the jump
    assert new and new == [(epoch + k) % 0x10000 or 1 for k in range(1, len(new) + 1)]
    assert any(f.name == "NAK" and f["acked_seq"] == stale and f["reason"] == 9 for f in tx)  # WRONG_EPOCH
    status = [f for f in tx if f.name == "STATUS"][-1]
    assert status["epoch"] == new[-1] and status["flags"] & 1  # still armed
    assert not [e for e in events if e["ev"] == "valve"]  # the command of the old epoch never fired


def test_the_count_survives_many_16_bit_wraps(fw: Build, identity: tuple[int, int], workdir: Path) -> None:
    """Timer5 counts 16 bits: the firmware extends it to 64. At 80000 counts/s the low word wraps every 0.8 s;
    FIREs straddling wraps switch on their counts, PONGs count up with the belt, no epoch starts."""
    speed = 80_000
    epoch = identity[1]
    s = Script()
    s.send(20_000, "ARM", session_id=sc.SESSION)
    for t in range(30_000, 3_000_000, 20_000):
        s.send(t, "HEARTBEAT", counter=t)
    pings = list(range(100_000, 2_900_000, 50_000))
    for t in pings:
        s.send(t + 7_000, "PING", host_time_ns=t)
    fires = []
    for k, wrap in enumerate((65_536, 131_072, 196_608)):
        for j, offset in enumerate((-1, 0, 1)):
            open_count = wrap + offset + 3 * j
            t_send = (sc.BELT_START_S + (open_count - 8_000) / speed) * 1e6
            cid = 1 + 3 * k + j
            seq = s.send(t_send, "FIRE", command_id=cid, valve_first=cid, valve_last=cid, open_count=open_count,
                         close_count=open_count + 200, epoch=epoch)
            fires.append(sc.Fire(cid, cid, open_count, open_count + 200, t_send, seq))
    events = run_script(fw, workdir, s, sc.profile(speed), duration_s=3.0)
    result = sc.analyse_fires(events, fires)
    assert result.accepted == result.fired == len(fires)
    assert result.open_errors == {0: len(fires)} and result.close_errors == {0: len(fires)}
    pongs = [(e["t_us"], f["encoder_count"]) for e, f in frames(events, "tx") if isinstance(f, Frame) and f.name == "PONG"]
    assert len(pongs) == len(pings)
    counts = [c for _t, c in pongs]
    assert counts == sorted(counts) and counts[-1] > 3 * 65_536
    for t_us, c in pongs:  # the firmware's count is the belt's (within the time the PONG takes to be sent)
        assert 0 <= sc.count_at(t_us, speed) - c <= 200
    assert not [f for _e, f in frames(events, "tx") if isinstance(f, Frame) and f.name == "EPOCH"]


class _Bank:
    """A valve bank that records the air the line's pin accounting blows (``FirmwareBoard._take``)."""

    t0_ns = 0

    def __init__(self) -> None:
        self.pulses: list[tuple[int, int, int, int, int]] = []

    def speed_counts_per_s(self) -> float:
        return 25_000.0

    def valve_pulse(self, command_id: int, valve_first: int, valve_last: int, t_open_ns: int, t_close_ns: int) -> None:
        self.pulses.append((command_id, valve_first, valve_last, t_open_ns, t_close_ns))

    def follow_pins(self, lag_mm: float) -> None:
        del lag_mm


def test_back_to_back_fires_on_one_valve(fw: Build, identity: tuple[int, int], workdir: Path) -> None:
    """FIREs on one valve that touch (one opens at the count where the other closes), overlap or nest: the pin is
    on exactly while any of them is (the outputs OR together), FIRED reports each one's own counts, and the line
    blows each from its own open count to its own close count (the counts its FIRED reports)."""
    epoch = identity[1]
    cases = {1: (10_000, 10_100), 2: (10_100, 10_200), 3: (10_300, 10_400), 4: (10_350, 10_450),
             5: (10_500, 10_600), 6: (10_520, 10_560), 7: (10_560, 10_580), 8: (10_700, 10_710)}  # fmt: skip
    # 7 and 8 are narrower than the firmware's 1 ms (some 25 counts at 25 000 counts/s): it widens them
    s = Script()
    s.send(20_000, "ARM", session_id=sc.SESSION)
    for t in range(30_000, 600_000, 20_000):
        s.send(t, "HEARTBEAT", counter=t)
    for cid, (open_count, close_count) in cases.items():  # at 200 ms the count is 3750
        s.send(200_000 + 2_000 * cid, "FIRE", command_id=cid, valve_first=5, valve_last=5, open_count=open_count,
               close_count=close_count, epoch=epoch)  # fmt: skip
    events = run_script(fw, workdir, s, sc.profile(25_000), duration_s=0.6)
    tx = [f for _e, f in frames(events, "tx") if isinstance(f, Frame)]
    executed = {f["command_id"]: (f["open_count"], f["close_count"]) for f in tx if f.name == "FIRED"}
    assert {cid: executed.get(cid) for cid in range(1, 7)} == {cid: cases[cid] for cid in range(1, 7)}
    for cid in (7, 8):
        assert executed[cid][0] == cases[cid][0] and 24 <= executed[cid][1] - executed[cid][0] <= 26, executed
    edges = [(e["on"], e["count"]) for e in events if e["ev"] == "valve"]
    assert edges == [(1, 10_000), (0, 10_200), (1, 10_300), (0, 10_450), (1, 10_500), (0, 10_600), (1, 10_700),
                     (0, executed[8][1])]  # fmt: skip
    bank = _Bank()
    board = FirmwareBoard(bank)
    try:
        board._take(events)
    finally:
        board.stop()
    ns_per_count = 40_000  # 25 000 counts/s from the belt's start
    start_ns = round(sc.BELT_START_S * 1e9)
    blown = {cid: (first, last, round((t_on - start_ns) / ns_per_count), round((t_off - start_ns) / ns_per_count))
             for cid, first, last, t_on, t_off in bank.pulses}  # fmt: skip
    assert len(bank.pulses) == len(cases)
    assert blown == {cid: (5, 5, o, c) for cid, (o, c) in executed.items()}
