"""The link process never tells the line of an outcome before the line has its event.

The line's ``wait_idle`` (fast simulated runs) waits until the link's counters hold
every execution of the device, then reads the events. A counter sent ahead of its
event let the last report of a run arrive after the run had read its reports.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from firmware_bridge.link import LinkEvent
from firmware_bridge.sync import SyncEstimator
from sorter.actuate.link_child import _Child


class BusyLink:
    """A link whose own thread finishes one command between any two calls from the forwarder.

    Like the real links, it counts an outcome and queues its event in one step under its lock;
    what the forwarder cannot hold is the time between its calls, which is where this link's
    thread runs.
    """

    def __init__(self, pending: int) -> None:
        self._next = 1
        self._last = pending
        self._events: list[LinkEvent] = []
        self.counters: dict[str, int] = {"executed": 0}
        self.sync = SyncEstimator()

    def _thread_runs(self) -> None:
        if self._next <= self._last:
            self.counters["executed"] += 1
            self._events.append(LinkEvent(self._next, "executed", 100 * self._next, 100 * self._next + 50))
            self._next += 1

    def poll_events(self) -> list[LinkEvent]:
        self._thread_runs()
        ev, self._events = self._events, []
        return ev

    def controller_epoch(self) -> tuple[int, int] | None:
        self._thread_runs()
        return (7, 1)

    def wait_ready(self, timeout_s: float) -> bool:
        self._thread_runs()
        return True

    def last_status(self) -> Any:
        self._thread_runs()
        return None

    def stats(self) -> dict[str, int]:
        self._thread_runs()
        return dict(self.counters)


def test_every_execution_the_counters_hold_has_its_event_sent_first() -> None:
    here, there = multiprocessing.Pipe(duplex=True)
    link = BusyLink(pending=12)
    child = _Child(there, link)  # type: ignore[arg-type]
    events_heard = 0
    counted: list[tuple[int, int]] = []  # (executions counted, events heard by then) at each stats message
    try:
        for _ in range(8):
            child.flush()
            while here.poll():
                msg = here.recv()
                if msg[0] == "events":
                    events_heard += sum(1 for e in msg[1] if e.status == "executed")
                elif msg[0] == "stats":
                    counted.append((msg[1]["executed"], events_heard))
    finally:
        here.close()
        there.close()
    assert counted, "the forwarder sent no counters"
    assert [c for c in counted if c[0] > c[1]] == []
    assert events_heard == 12 and counted[-1][0] == 12  # and all of it arrives
