"""The FrameSource protocol: a camera (real or simulated) behind one small interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from sorter.entities import Frame

#: Odometer at a monotonic time: ``odometer(t_ns) -> s_mm``. Called from the capture thread.
Odometer = Callable[[int], float]
CaptureState = Literal["starting", "streaming", "reconnecting", "stale", "ended", "closed"]


def no_odometer(t_ns: int) -> float:
    """Default odometer: 0 mm at every time (no encoder and no speed source wired)."""
    return 0.0


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """How a frame source is run (the same for every camera type).

    Attributes:
        realtime: files and image folders are paced at their frame rate; False delivers every frame (replay).
        loop: files and image folders restart at the end.
        wait_for_device: live devices absent at start are retried instead of failing ``start()``.
    """

    realtime: bool = True
    loop: bool = False
    wait_for_device: bool = False


@dataclass(frozen=True, slots=True)
class CaptureHealth:
    """A snapshot of a source's condition, for status pages and the actuation interlock.

    Attributes:
        state: "starting" | "streaming" | "reconnecting" | "stale" | "ended" | "closed".
        reason: why the state is not plain "streaming" (empty when it is).
        last_frame_age_ms: age of the newest captured frame on the source's clock; ``None`` before the first.
        frames: frames captured since start.
        frames_dropped: frames overwritten in the slot before anyone read them.
        reconnects: successful reopenings after the device was lost.
    """

    state: CaptureState
    reason: str
    last_frame_age_ms: float | None
    frames: int
    frames_dropped: int
    reconnects: int


def judge_health(
    state: CaptureState,
    reason: str,
    *,
    now_ns: int,
    last_frame_ns: int | None,
    started_ns: int | None,
    stale_after_ms: float,
    frames: int,
    frames_dropped: int,
    reconnects: int,
    staleness_applies: bool = True,
) -> CaptureHealth:
    """The health of a live source from its own state and stamps (pure; shared by the real sources).

    A "streaming" source whose newest frame is older than ``stale_after_ms``, or a "starting" one that
    has given no frame that long after start, is reported "stale" with the age in the reason.
    ``staleness_applies`` is False for sources that wait on their consumer (replay), never stale.
    """
    age_ms = None if last_frame_ns is None else (now_ns - last_frame_ns) / 1e6
    if staleness_applies and state == "streaming" and age_ms is not None and age_ms > stale_after_ms:
        state, reason = "stale", f"no fresh frame for {age_ms:.0f} ms (camera.stale_after_ms = {stale_after_ms:g})"
    elif state == "starting" and started_ns is not None and (now_ns - started_ns) / 1e6 > stale_after_ms:
        waited_ms = (now_ns - started_ns) / 1e6
        state, reason = "stale", f"no frame yet {waited_ms:.0f} ms after start (camera.stale_after_ms = {stale_after_ms:g})"
    return CaptureHealth(state, reason, age_ms, frames, frames_dropped, reconnects)


@runtime_checkable
class FrameSource(Protocol):
    """A source of frames stamped at capture.

    Live sources run a capture thread that keeps only the latest frame (one
    slot, drop-oldest) and count what they dropped.
    """

    def start(self) -> None:
        """Open the device and start capturing."""
        ...

    def latest(self, timeout_s: float) -> Frame | None:
        """Return the newest frame not returned before, waiting up to ``timeout_s``; ``None`` on timeout."""
        ...

    @property
    def frames_dropped(self) -> int:
        """Frames captured but overwritten before anyone read them."""
        ...

    def close(self) -> None:
        """Stop capturing and release the device."""
        ...
