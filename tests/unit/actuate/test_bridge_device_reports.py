"""When a fast (simulated-time) run may move on: the host has heard of every execution the device recorded."""

from __future__ import annotations

from sorter.actuate.bridge import device_reports_in


def test_waits_for_an_execution_report_still_on_its_way() -> None:
    assert not device_reports_in({"executed": 4, "lost": 0}, 5)
    assert device_reports_in({"executed": 5, "lost": 0}, 5)


def test_a_command_finished_as_lost_is_not_waited_for() -> None:
    """An epoch change finished two pending commands as lost; the device had executed one of them just before."""
    assert device_reports_in({"executed": 4, "lost": 2}, 5)
    assert not device_reports_in({"executed": 2, "lost": 2}, 5)


def test_a_link_that_counts_nothing_yet() -> None:
    assert device_reports_in({}, 0) and not device_reports_in({}, 1)


def test_a_report_for_a_command_finished_otherwise_was_heard_of() -> None:
    """The host gave a command up (no ACK after its retries) and the controller executed it anyway: its report came."""
    assert device_reports_in({"executed": 4, "lost": 0, "executed_after_outcome": 1}, 5)
    assert not device_reports_in({"executed": 3, "lost": 0, "executed_after_outcome": 1}, 5)
