"""Which encoder epoch the controller's counts belong to, as the host sees it (pure logic, no I/O).

A count means something only within one epoch (PROTOCOL.md section 4.6): the
controller reports a random ``boot_id`` (new at every start) and an ``epoch``
(incremented whenever its count is re-zeroed or jumps). The host feeds every
reading that carries them (STATUS, PONG, EPOCH; the Modbus header) to an
``EpochTracker``, which says when the positions computed so far stopped
meaning anything: a new boot id, a new epoch, or a count that moved backwards
or further than the belt can move, without the controller saying so.

"Further than the belt can move" is judged only between readings that carry the
controller's own clock (PONG: count and device time latched together), over the
longer of two spans: the controller's clock between them, and the host's from
sending the first request to receiving the second answer. Host arrival times
alone would trip on a late reply, and a simulated controller's encoder runs on
simulated time, not on the host's clock.
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
            a larger step between two timed readings is an unannounced jump. 0 disables the check.
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
        self._timed: tuple[int, int, int] | None = None  # the last timed reading: (host time sent, device us, count)

    def known(self) -> bool:
        """True once a reading has told the boot id and the epoch."""
        return self.epoch is not None

    def observe(
        self, boot_id: int, epoch: int, count: int, now_ns: int, device_time_us: int | None = None, sent_ns: int | None = None
    ) -> EpochChange | None:
        """A reading of the controller received at ``now_ns`` (host clock); returns the change it reveals, if any.

        Args:
            device_time_us: the controller's clock latched with ``count`` (PONG); None for untimed readings
                (STATUS, EPOCH), which are checked for restarts, new epochs and backward moves only.
            sent_ns: host time the request of a timed reading was sent (the count was latched after it);
                default ``now_ns``.
        """
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
        elif device_time_us is not None and self._timed is not None and self.max_counts_per_s > 0:
            t_sent_ns, t_dev_us, before = self._timed
            dt_s = max(now_ns - t_sent_ns, (device_time_us - t_dev_us) * 1000, 0) / 1e9
            if count - before > self.max_counts_per_s * dt_s + self.slack_counts:
                reason = f"count jumped from {before} to {count} in {dt_s * 1e3:.0f} ms (more than the belt can move)"
        first = self.epoch is None
        self.boot_id, self.epoch = boot_id, epoch
        self._count = count
        if device_time_us is not None:
            self._timed = (now_ns if sent_ns is None else sent_ns, device_time_us, count)
        elif reason:
            self._timed = None  # the count restarted: the next timed reading starts afresh
        if first or not reason:
            return None
        self.changes += 1
        return EpochChange(reason, boot_id, epoch, announced, restarted)
