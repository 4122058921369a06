"""The emulated firmware board's pin log turned into air pulses (``FirmwareBoard._take``, no process started)."""

from __future__ import annotations

import struct

from sorter.actuate.firmware_board import FirmwareBoard

T0_NS = 5_000_000_000


class Bank:
    """A valve bank that records the pulses it is told about (the simulator's ``SimDevice`` in the line)."""

    def __init__(self) -> None:
        self.pulses: list[tuple[int, int, int, int, int]] = []
        self.lag_mm = 0.0

    @property
    def t0_ns(self) -> int:
        return T0_NS

    def speed_counts_per_s(self) -> float:
        return 25_000.0

    def valve_pulse(self, command_id: int, valve_first: int, valve_last: int, t_open_ns: int, t_close_ns: int) -> None:
        self.pulses.append((command_id, valve_first, valve_last, t_open_ns, t_close_ns))

    def follow_pins(self, lag_mm: float) -> None:
        self.lag_mm = lag_mm


def fire(cid: int, first: int, last: int, open_count: int, width: int = 100, seq: int = 1) -> dict[str, object]:
    payload = struct.pack("<IHHqqH", cid, first, last, open_count, open_count + width, 1)
    return {"ev": "rx", "type": 0x10, "seq": seq, "p": payload.hex(), "t_us": 1.0}


def answer(msg_type: int, seq: int, cid: int, code: int) -> dict[str, object]:
    """An ACK (0x80) or NAK (0x82) the firmware sent."""
    return {"ev": "tx", "type": msg_type, "seq": 0, "p": struct.pack("<HIB", seq, cid, code).hex(), "t_us": 2.0}


def edge(valve: int, on: int, count: int, cycle: int) -> dict[str, object]:
    return {"ev": "valve", "valve": valve, "on": on, "count": count, "cycle": cycle, "t_us": cycle / 16.0}


def later(t_us: float) -> dict[str, object]:
    """Any later entry of the log (a pulse is blown once the log has moved past all of its edges)."""
    return {"ev": "speed", "t_us": t_us}


def test_valves_switched_together_make_one_pulse_named_by_its_fire() -> None:
    bank = Bank()
    board = FirmwareBoard(bank)
    try:
        board._take([fire(42, 3, 5, 1000), *(edge(v, 1, 1000, 16_000) for v in (3, 4, 5))])
        assert bank.pulses == []  # open: nothing blown yet
        board._take([edge(v, 0, 1100, 80_000) for v in (5, 3, 4)])
        assert bank.pulses == []  # the log may hold more edges of this switching
        board._take([later(5_100.0)])
        assert bank.pulses == [(42, 3, 5, T0_NS + 1_000_000, T0_NS + 5_000_000)]
        assert board.pulses == 1 and board.edges == 6
    finally:
        board.stop()


def test_separate_runs_of_valves_and_unnamed_pulses() -> None:
    bank = Bank()
    board = FirmwareBoard(bank)
    try:
        # valves 1 and 9 of one FIRE (overlapping pulses OR together on the pins), valve 20 opened by no FIRE seen
        events = [fire(7, 1, 1, 500), fire(8, 9, 9, 500), edge(1, 1, 500, 1600), edge(9, 1, 500, 1600),
                  edge(20, 1, 600, 3200), edge(1, 0, 600, 4800), edge(9, 0, 600, 4800), edge(20, 0, 700, 6400),
                  later(1_000.0)]  # fmt: skip
        board._take(events)
        assert sorted(bank.pulses) == [
            (0, 20, 20, T0_NS + 200_000, T0_NS + 400_000),
            (7, 1, 1, T0_NS + 100_000, T0_NS + 300_000),
            (8, 9, 9, T0_NS + 100_000, T0_NS + 300_000),
        ]
    finally:
        board.stop()


def test_one_fire_over_two_ports_is_one_pulse() -> None:
    """The ports switch a few cycles apart (valves 16-23 on one, 24-31 on the next), and a log flush may fall
    between them: still one pulse of valves 18-26, timed by the first port's edges."""
    bank = Bank()
    board = FirmwareBoard(bank)
    try:
        board._take([fire(44, 18, 26, 1000), *(edge(v, 1, 1000, 16_000) for v in range(18, 24))])
        board._take([*(edge(v, 1, 1000, 16_004) for v in range(24, 27)), *(edge(v, 0, 1100, 80_000) for v in range(18, 24))])
        board._take([*(edge(v, 0, 1100, 80_004) for v in range(24, 27)), later(6_000.0)])
        assert bank.pulses == [(44, 18, 26, T0_NS + 1_000_000, T0_NS + 5_000_000)]
    finally:
        board.stop()


def test_fires_overlapping_on_a_valve_blow_each_from_its_own_opening() -> None:
    """Two FIREs overlapping on valves 3-4 are one pin pulse there (the outputs OR together): each command still
    blows from its own open count to its own close count, as in the in-process line, and a FIRE is one pulse over
    all its valves although where it overlaps another its part is known only when that pin switches off."""
    bank = Bank()
    board = FirmwareBoard(bank)

    def cycle(count: int) -> int:
        return 16 * 40 * count  # 25 000 counts/s: 40 us a count, 16 cycles a microsecond

    try:
        board._take([fire(26, 2, 4, 1000, width=100, seq=1), fire(27, 3, 5, 1050, width=150, seq=2),
                     *(edge(v, 1, 1000, cycle(1000)) for v in (2, 3, 4)), edge(5, 1, 1050, cycle(1050))])  # fmt: skip
        board._take([edge(2, 0, 1100, cycle(1100)), later(46_000.0)])
        assert bank.pulses == []  # valves 3-4 still on: FIRE 26's part there ends at count 1100, inside their pulse
        board._take([*(edge(v, 0, 1200, cycle(1200)) for v in (3, 4, 5)), later(60_000.0)])
        ms = 1_000_000
        assert sorted(bank.pulses) == [(26, 2, 4, T0_NS + 40 * ms, T0_NS + 44 * ms), (27, 3, 5, T0_NS + 42 * ms, T0_NS + 48 * ms)]
        assert board.pulses == 2
    finally:
        board.stop()


def test_refused_and_cancelled_fires_blow_no_air() -> None:
    """A FIRE the firmware refused (NAK) or cancelled (ACK CANCELLED) inside another one's pin pulse blows nothing;
    a refused reuse of an executed FIRE's id does not take that FIRE back."""
    bank = Bank()
    board = FirmwareBoard(bank)
    try:
        events = [fire(5, 3, 3, 1000, seq=1), answer(0x80, 1, 5, 0), fire(6, 3, 3, 1020, seq=2),
                  answer(0x82, 2, 6, 2), fire(7, 3, 3, 1040, seq=3), answer(0x80, 3, 7, 0), answer(0x80, 4, 7, 2),
                  fire(5, 3, 3, 1060, seq=5), answer(0x82, 5, 5, 8),
                  edge(3, 1, 1000, 16_000), edge(3, 0, 1100, 80_000), later(6_000.0)]  # fmt: skip
        board._take(events)
        assert bank.pulses == [(5, 3, 3, T0_NS + 1_000_000, T0_NS + 5_000_000)]
    finally:
        board.stop()
