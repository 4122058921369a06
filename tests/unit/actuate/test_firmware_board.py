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


def fire(cid: int, first: int, last: int, open_count: int) -> dict[str, object]:
    payload = struct.pack("<IHHqqH", cid, first, last, open_count, open_count + 100, 1)
    return {"ev": "rx", "type": 0x10, "seq": 1, "p": payload.hex(), "t_us": 1.0}


def edge(valve: int, on: int, count: int, cycle: int) -> dict[str, object]:
    return {"ev": "valve", "valve": valve, "on": on, "count": count, "cycle": cycle, "t_us": cycle / 16.0}


def test_valves_switched_together_make_one_pulse_named_by_its_fire() -> None:
    bank = Bank()
    board = FirmwareBoard(bank)
    try:
        board._take([fire(42, 3, 5, 1000), *(edge(v, 1, 1000, 16_000) for v in (3, 4, 5))])
        assert bank.pulses == []  # open: nothing blown yet
        board._take([edge(v, 0, 1100, 80_000) for v in (5, 3, 4)])
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
                  edge(20, 1, 600, 3200), edge(1, 0, 600, 4800), edge(9, 0, 600, 4800), edge(20, 0, 700, 6400)]  # fmt: skip
        board._take(events)
        assert sorted(bank.pulses) == [
            (0, 20, 20, T0_NS + 200_000, T0_NS + 400_000),
            (7, 1, 1, T0_NS + 100_000, T0_NS + 300_000),
            (8, 9, 9, T0_NS + 100_000, T0_NS + 300_000),
        ]
    finally:
        board.stop()
