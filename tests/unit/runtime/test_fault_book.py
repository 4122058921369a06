"""The fault book keeps what went wrong until the run ends, and the terminal's panel shows it until it clears."""

from __future__ import annotations

from sorter.runtime.fault_book import RECONNECTS, WATCHDOG, FaultBook
from sorter.runtime.status import clock_text, fault_panel

T0 = 1_800_000_000.0  # wall-clock seconds


def test_a_lasting_fault_stays_on_the_panel_until_it_clears_and_stays_counted() -> None:
    book = FaultBook()
    assert fault_panel(book, T0) == ["faults: none"]
    assert book.raise_fault("camera", "no fresh frame for more than 300 ms", T0)
    assert not book.raise_fault("camera", "camera reconnecting: device gone", T0 + 1)  # same fault, new reason
    for dt in (0.5, 1.0, 30.0, 200.0):  # every redraw while it lasts
        panel = fault_panel(book, T0 + dt)
        assert panel[0].startswith("FAULT camera: camera reconnecting: device gone (since " + clock_text(T0))
        assert panel[-1] == "faults since start: camera 1 (active)"
    assert fault_panel(book, T0 + 200.0)[0].endswith("3 min 20 s)")
    assert book.clear_fault("camera", T0 + 250) and not book.clear_fault("camera", T0 + 251)
    assert fault_panel(book, T0 + 300) == [f"faults since start: camera 1 (cleared {clock_text(T0 + 250)})"]
    assert book.raise_fault("camera", "again", T0 + 400)
    assert book.counts() == {"camera": 2} and [f.kind for f in book.active()] == ["camera"]


def test_watchdog_trips_count_from_the_host_or_the_controller_whichever_saw_more() -> None:
    book = FaultBook()
    # the controller has counted 7 trips over its uptime before this run: they are not this run's
    assert book.observe_actuator({"link_watchdog_faults": 0, "controller_watchdog_trips": 7}, T0) == {}
    # a trip reported to the host and counted by the controller is one trip, not two
    assert book.observe_actuator({"link_watchdog_faults": 1, "controller_watchdog_trips": 8}, T0 + 1) == {WATCHDOG: 1}
    # two trips during a link outage: only the controller's count knows them
    assert book.observe_actuator({"link_watchdog_faults": 1, "controller_watchdog_trips": 10}, T0 + 2) == {WATCHDOG: 2}
    # the controller restarted (its count went back to zero) and tripped once since
    assert book.observe_actuator({"link_watchdog_faults": 1, "controller_watchdog_trips": 1, "reconnects": 1},
                                 T0 + 3) == {WATCHDOG: 1, RECONNECTS: 1}
    assert book.observe_actuator({"link_watchdog_faults": 1, "controller_watchdog_trips": 1, "reconnects": 1}, T0 + 4) == {}
    assert book.counts() == {RECONNECTS: 1, WATCHDOG: 4}
    assert book.last_event_at(WATCHDOG) == T0 + 3
    panel = fault_panel(book, T0 + 5)
    assert panel == [f"faults since start: link reconnects 1 (last {clock_text(T0 + 3)}) | "
                     f"watchdog trips 4 (last {clock_text(T0 + 3)})"]


def test_a_line_without_a_controller_link_counts_no_trips() -> None:
    book = FaultBook()
    assert book.observe_actuator({"sent": 5, "executed": 5}, T0) == {}
    assert book.observe_actuator({"link_watchdog_faults": True}, T0) == {}  # not a count
    assert book.counts() == {}
