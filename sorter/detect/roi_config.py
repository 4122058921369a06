"""Settings of the detector's region of interest (``detector.roi`` of the config): the schema alone.

Pure pydantic, so :mod:`sorter.config` may import it; the region itself is
computed by :mod:`sorter.detect.roi` (maths) and ``sorter.runtime.plant.detector_roi``
(which camera model, which mode).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class RoiConfig(BaseModel):
    """Which part of each frame the detector looks at.

    Attributes:
        mode: ``auto``: the belt's footprint in the image when the camera model is known (a real camera with a
            calibration file, or the simulated camera's true mount), else the whole frame; ``belt``: the belt's
            footprint, an error without a camera model; ``full``: the whole frame.
        px: an explicit rectangle ``[x0, y0, x1, y1]`` in image pixels (x1, y1 exclusive), for footage without a
            calibration; it replaces ``mode``.
        margin_mm: how far beyond each belt edge the belt region reaches (objects overhanging the edge are seen).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    mode: Literal["auto", "belt", "full"] = "auto"
    px: tuple[int, int, int, int] | None = Field(None, description="explicit [x0, y0, x1, y1] in image pixels")
    margin_mm: float = Field(50.0, ge=0, le=5000, description="belt region beyond each belt edge")

    @field_validator("px", mode="before")
    @classmethod
    def _four(cls, v: object) -> object:
        if isinstance(v, list | tuple) and len(v) != 4:
            raise ValueError(f"4 whole numbers [x0, y0, x1, y1] in image pixels (got {len(v)}), e.g. [0, 120, 1280, 600]")
        return v

    @field_validator("px")
    @classmethod
    def _rectangle(cls, v: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if v is None:
            return v
        x0, y0, x1, y1 = v
        if x0 < 0 or y0 < 0:
            raise ValueError(f"[x0, y0, x1, y1] with x0, y0 >= 0 (got x0 {x0}, y0 {y0}), e.g. [0, 120, 1280, 600]")
        if x1 <= x0 or y1 <= y0:
            raise ValueError(
                f"[x0, y0, x1, y1] with x1 > x0 and y1 > y0 (a non-empty rectangle; got {list(v)}), e.g. [0, 120, 1280, 600]"
            )
        return v

    @model_validator(mode="after")
    def _one_source(self) -> RoiConfig:
        if self.px is not None and self.mode != "auto":
            raise ValueError(
                f"px {list(self.px)} and mode {self.mode!r} both say where to look: remove mode (px is used) or px"
            )
        return self
