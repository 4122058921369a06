"""The FrameSource protocol: a camera (real or simulated) behind one small interface."""

from __future__ import annotations

from typing import Protocol

from sorter.entities import Frame


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
