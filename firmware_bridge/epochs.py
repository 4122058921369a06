"""Which encoder epoch the controller's counts belong to, as the host sees it (pure logic, no I/O).

A count means something only within one epoch (PROTOCOL.md section 4.6): the
controller reports a random ``boot_id`` (new at every start) and an ``epoch``
(incremented whenever its count is re-zeroed or jumps). The host feeds every
reading that carries them (STATUS, PONG, EPOCH; the Modbus header) to an
``EpochTracker``, which says when the positions computed so far stopped
meaning anything: a new boot id, a new epoch, or a count that moved backwards
or further than the belt can move, without the controller saying so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EpochChange:
    """The controller's counts restarted: every command computed before is void.

    Attributes:
        reason: what happened, in words (for logs and the outcome's detail).
        boot_id: the controller's boot id now.
        epoch: the controller's epoch now.
        announced: True when the controller itself reported the change (new boot id or epoch);
            False when the host inferred it from the count (the controller may still hold old commands).
        restarted: True when the boot id changed (the controller is disarmed after a start).
    """

    reason: str
    boot_id: int
    epoch: int
    announced: bool
    restarted: bool


class EpochTracker:
    """Follows ``(boot_id, epoch, count)`` readings and reports the first reading of a new epoch.

    Args:
        max_counts_per_s: the fastest the count can move (belt top speed x counts per mm, with margin);
            a larger step between two readings is an unannounced jump. 0 disables the check.
        backward_tolerance_counts: encoder jitter allowed backwards before a count is taken as reset.
        slack_counts: extra forward movement allowed on top of ``max_counts_per_s`` x time.
    """

    def __init__(self, max_counts_per_s: float = 0.0, backward_tolerance_counts: int = 64, slack_counts: int = 1000) -> None:
        self.max_counts_per_s = max_counts_per_s
        self.backward_tolerance_counts = backward_tolerance_counts
        self.slack_counts = slack_counts
        self.boot_id: int | None = None
        self.epoch: int | None = None
        self.changes = 0
        self._count: int | None = None
        self._t_ns = 0

    def known(self) -> bool:
        """True once a reading has told the boot id and the epoch."""
        return self.epoch is not None

    def observe(self, boot_id: int, epoch: int, count: int, now_ns: int) -> EpochChange | None:
        """A reading of the controller taken about ``now_ns`` (host clock); returns the change it reveals, if any."""
        reason = ""
        announced = restarted = False
        if self.boot_id is not None and boot_id != self.boot_id:
            reason = f"controller restarted (boot id 0x{self.boot_id:08x} -> 0x{boot_id:08x})"
            announced = restarted = True
        elif self.epoch is not None and epoch != self.epoch:
            reason = f"controller encoder epoch {self.epoch} -> {epoch} (count reset to {count})"
            announced = True
        elif self._count is not None and count < self._count - self.backward_tolerance_counts:
            reason = f"count went back from {self._count} to {count} without a new epoch"
        elif self._count is not None and self.max_counts_per_s > 0:
            dt_s = max(0, now_ns - self._t_ns) / 1e9
            allowed = self.max_counts_per_s * dt_s + self.slack_counts
            if count - self._count > allowed:
                reason = f"count jumped from {self._count} to {count} in {dt_s * 1e3:.0f} ms (more than the belt can move)"
        first = self.epoch is None
        self.boot_id, self.epoch = boot_id, epoch
        self._count, self._t_ns = count, now_ns
        if first or not reason:
            return None
        self.changes += 1
        return EpochChange(reason, boot_id, epoch, announced, restarted)
