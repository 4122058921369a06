"""The supervised link's ledger: every command handed over ends in exactly one outcome, lost ones included."""

from __future__ import annotations

import os
import signal

from firmware_bridge.link import LinkEvent
from firmware_bridge.messages import Fire
from sorter.actuate.link_child import raise_priority
from sorter.actuate.link_ledger import CARRIED, LOST, Backoff, CommandLedger
from sorter.actuate.link_process import exit_reason


def test_a_final_event_ends_its_command_once_and_accepted_does_not() -> None:
    ledger = CommandLedger()
    for cid in (1, 2, 3):
        ledger.submitted(cid, generation=1)
    assert ledger.accept(LinkEvent(1, "accepted"), 1) and ledger.outstanding == {1: 1, 2: 1, 3: 1}
    assert ledger.accept(LinkEvent(1, "executed", 10, 20), 1)
    assert not ledger.accept(LinkEvent(1, "executed", 10, 20), 1)  # a second outcome is a stray
    assert ledger.accept(LinkEvent(2, "rejected", detail="unknown(9)"), 1)
    assert ledger.outcomes == {"executed": 1, "rejected": 1} and ledger.strays == 1
    assert ledger.sent == 3 and ledger.finished() == 2 and list(ledger.outstanding) == [3] and ledger.balanced()


def test_a_death_finishes_every_outstanding_command_as_lost_and_news_from_the_dead_is_ignored() -> None:
    ledger = CommandLedger()
    for cid in (5, 4, 6):
        ledger.submitted(cid, generation=1)
    ledger.accept(LinkEvent(4, "executed", 1, 2), 1)
    lost = ledger.lose_all("link process died (killed by SIGKILL), restarting")
    assert [(e.command_id, e.status) for e in lost] == [(5, LOST), (6, LOST)]
    assert lost[0].detail.startswith("link process died")
    assert not ledger.outstanding and ledger.outcomes == {"executed": 1, LOST: 2}
    ledger.submitted(7, generation=2)
    assert not ledger.accept(LinkEvent(5, "executed", 3, 4), 2)  # old incarnation's command: already lost
    assert not ledger.accept(LinkEvent(7, "executed", 3, 4), 1)  # wrong incarnation
    assert ledger.accept(LinkEvent(7, "executed", 3, 4), 2)
    assert ledger.sent == 4 == ledger.finished() and ledger.strays == 2 and ledger.lose_all("again") == []


def test_a_death_carries_stamped_commands_over_to_the_next_link_and_loses_only_the_unstamped() -> None:
    ledger = CommandLedger()
    stamped = [Fire(cid, 0, 0, 100 * cid, 100 * cid + 10, epoch=3) for cid in (1, 2, 3)]
    for c in stamped:
        ledger.submitted(c.command_id, 1, c, boot_id=0xBEEF)
    ledger.submitted(4, 1, Fire(4, 0, 0, 400, 410), boot_id=None)  # sent before the controller's epoch was known
    assert ledger.accept(LinkEvent(2, "accepted"), 1)
    assert ledger.accept(LinkEvent(3, "executed", 300, 310), 1)
    lost = ledger.carry_over("link process died (killed by SIGKILL), restarting")
    assert [(e.command_id, e.status) for e in lost] == [(4, LOST)] and "epoch was known" in lost[0].detail
    assert ledger.outstanding == {1: CARRIED, 2: CARRIED} and ledger.balanced()
    assert not ledger.accept(LinkEvent(1, "executed", 100, 110), 1)  # late news from the dead link: a stray
    assert ledger.hand_over(2) == [(stamped[0], 0xBEEF), (stamped[1], 0xBEEF)] and ledger.carried == 2
    assert ledger.outstanding == {1: 2, 2: 2}
    assert not ledger.accept(LinkEvent(2, "accepted"), 2)  # the new link accepts it again: the caller heard it once
    assert ledger.accept(LinkEvent(1, "accepted"), 2)
    assert ledger.accept(LinkEvent(1, "executed", 100, 110), 2) and ledger.accept(LinkEvent(2, "late"), 2)
    assert ledger.outcomes == {"executed": 2, LOST: 1, "late": 1} and ledger.sent == 4 == ledger.finished()
    assert ledger.carry_over("again") == [] and ledger.hand_over(3) == []


def test_outcomes_the_ledger_never_heard_of_still_end_a_command() -> None:
    ledger = CommandLedger()
    ledger.submitted(1, 1)
    assert ledger.accept(LinkEvent(1, "dropped_epoch"), 1)  # type: ignore[arg-type]
    assert ledger.outcomes == {"dropped_epoch": 1} and ledger.balanced()


def test_backoff_restarts_at_once_then_doubles_and_forgets_after_a_healthy_run() -> None:
    b = Backoff(min_s=0.1, max_s=0.5, healthy_s=10.0)
    b.started(0.0)
    delays = [b.died(1.0)]
    for t in (2.0, 3.0, 4.0, 5.0):
        b.started(t - 0.5)
        delays.append(b.died(t))
    assert delays == [0.0, 0.1, 0.2, 0.4, 0.5]
    b.started(100.0)
    assert b.died(120.0) == 0.0  # up for 20 s: a fresh failure, restart at once


def test_a_childs_end_in_words() -> None:
    assert exit_reason(-signal.SIGKILL) == "killed by SIGKILL"
    assert exit_reason(3) == "exited with code 3"
    assert exit_reason(None) == "stopped answering"
    assert exit_reason(-200) == "killed by signal 200"


def test_priority_is_raised_where_allowed_and_says_so_otherwise() -> None:
    # run in a forked child so this test process keeps its own priority
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        raised, how = raise_priority(5)
        os.write(w, f"{int(raised)}|{how}|{os.sched_getscheduler(0)}|{os.nice(0)}".encode())
        os._exit(0)
    os.close(w)
    out = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    raised_s, how, policy_s, nice_s = out.split("|")
    if how.startswith("SCHED_FIFO"):
        assert raised_s == "1" and int(policy_s) == os.SCHED_FIFO and how == "SCHED_FIFO priority 5"
    elif how.startswith("nice"):
        assert raised_s == "1" and int(nice_s) < 0 and "SCHED_FIFO refused" in how
    else:
        assert raised_s == "0" and how.startswith("normal priority") and "CAP_SYS_NICE" in how
