"""The Detector protocol every backend implements (the registry is ``sorter.detect.registry``)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from sorter.entities import Detections, Frame


@runtime_checkable
class Detector(Protocol):
    """Turns a frame into detections in image pixels.

    Attributes:
        needs_pixels: False when the backend does not look at ``frame.image``
            (the oracle), so a simulated camera may skip rendering.
        class_names: class names in class-id order.
    """

    needs_pixels: bool
    class_names: tuple[str, ...]

    def detect(self, frame: Frame) -> Detections:
        """Detect objects in one frame. Must not keep a reference to ``frame.image``."""
        ...

    def close(self) -> None:
        """Release resources (GPU memory, sessions)."""
        ...
