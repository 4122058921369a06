"""Whether a PLC's encoder positions still mean what they meant (PROTOCOL.md 4.6), and the link's health (pure).

``EpochWatch`` follows the boot id, the encoder epoch and the count of every poll and
says when the positions of the commands taken so far stopped meaning anything: the PLC
restarted, its count was re-zeroed, or the count moved backwards or faster than a belt
can. ``LinkHealthState`` keeps why the link is down, and holds a fault long enough for a
periodic health check to see it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

MS = 1_000_000


@dataclass(frozen=True, slots=True)
class EpochChange:
    """The positions of the old epoch mean nothing any more.

    Attributes:
        kind: ``restart`` (a new boot id), ``epoch`` (a new encoder epoch) or ``jump`` (a count that moved
            backwards or beyond physics without a new epoch).
        why: in words, for the outcome of every command it ends.
    """

    kind: Literal["restart", "epoch", "jump"]
    why: str

    @property
    def same_plc(self) -> bool:
        """The PLC's slots still hold what was written (not after a restart)."""
        return self.kind != "restart"


class EpochWatch:
    """Boot id, epoch and count of the last poll.

    Args:
        max_counts_per_s: the fastest the encoder can count.
        backward_tolerance_counts: how far the count may step back (encoder jitter).
    """

    def __init__(self, max_counts_per_s: float, backward_tolerance_counts: int = 0) -> None:
        self.max_counts_per_s = max_counts_per_s
        self.tolerance = backward_tolerance_counts
        self.boot_id: int | None = None
        self.epoch: int | None = None
        self._last: tuple[int, int, int | None] | None = None  # (host time the poll was sent, count, device time us)

    @property
    def known(self) -> bool:
        """A poll has been seen."""
        return self._last is not None

    def observe(
        self, boot_id: int, epoch: int, count: int, t_sent_ns: int, t_done_ns: int, device_time_us: int | None = None
    ) -> EpochChange | None:
        """A poll read between ``t_sent_ns`` and ``t_done_ns``: None, or what ended the old epoch.

        The count may move ``max_counts_per_s`` x the longer of two spans since the last poll: the host's (from
        sending that poll to receiving this one) and the PLC's own clock (``device_time_us``, read with the count),
        so that neither a slow answer nor an encoder on simulated time reads as a jump.
        """
        last, self._last = self._last, (t_sent_ns, count, device_time_us)
        old_boot, old_epoch = self.boot_id, self.epoch
        self.boot_id, self.epoch = boot_id, epoch
        if old_boot is None or old_epoch is None or last is None:
            return None
        if boot_id != old_boot:
            change = EpochChange("restart", f"PLC restarted (boot id 0x{old_boot:08x} -> 0x{boot_id:08x})")
        elif epoch != old_epoch:
            change = EpochChange("epoch", f"PLC encoder epoch {old_epoch} -> {epoch} (its count was reset)")
        else:
            t_prev_ns, count_prev, dev_prev_us = last
            moved = count - count_prev
            dt_ns = t_done_ns - t_prev_ns  # the two readings were at most this far apart on the host
            if device_time_us is not None and dev_prev_us is not None:
                dt_ns = max(dt_ns, (device_time_us - dev_prev_us) * 1000)
            dt_s = max(dt_ns, 0) / 1e9
            if -self.tolerance <= moved <= self.max_counts_per_s * dt_s + self.tolerance:
                return None
            why = f"PLC encoder count jumped from {count_prev} to {count} in {dt_s * 1e3:.0f} ms without a new epoch"
            change = EpochChange("jump", why)
        log.warning("%s: commands of the old epoch finished as lost; re-synchronising", change.why)
        return change


class LinkHealthState:
    """Why the link is down (None: it is not), the last fault, and since when.

    Args:
        hold_ms: after any fault the link counts as down at least this long.
    """

    def __init__(self, hold_ms: float) -> None:
        self.hold_ns = int(hold_ms * MS)
        self.down_reason: str | None = "not connected yet"
        self.error: str | None = None  # the link has stopped for good
        self.last_fault = ""
        self.last_fault_ns = -(1 << 62)
        self.resync = False  # after an epoch change: down until the odometer sync has a speed again

    def fault(self, reason: str, now_ns: int) -> None:
        """Down for ``reason`` until a cycle goes through without a fault."""
        self.down_reason = reason
        self.last_fault = reason
        self.last_fault_ns = now_ns

    def stop(self, message: str, now_ns: int) -> None:
        self.error = message
        self.fault(message, now_ns)

    def cycle_done(self, cycle_start_ns: int, ready: bool, synced: bool) -> str | None:
        """A cycle ended: clear the fault when it went through cleanly; returns the fault cleared (else None)."""
        if self.resync and synced:
            self.resync = False
        if self.down_reason is None or not ready or self.resync or self.last_fault_ns >= cycle_start_ns:
            return None
        was, self.down_reason = self.down_reason, None
        return was

    def up(self, now_ns: int, ready: bool) -> bool:
        return ready and self.down_reason is None and now_ns - self.last_fault_ns >= self.hold_ns

    def reason(self, now_ns: int, ready: bool, connected: bool) -> str:
        """Why the link is not up ("" when it is)."""
        if self.up(now_ns, ready):
            return ""
        if self.error is not None:
            return self.error
        if self.down_reason is not None:
            return self.down_reason
        if ready:
            return f"recovered from: {self.last_fault}"
        return "not armed" if connected else "not connected"
