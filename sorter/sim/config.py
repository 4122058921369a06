"""Settings of the virtual line (``sim:`` section of the config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SpeedStep(_Strict):
    """A step change of the true belt speed at a simulated time."""

    t_s: float = Field(ge=0, le=1e7)
    speed_mm_s: float = Field(gt=0, le=10_000)


class SimMountConfig(_Strict):
    """True mount of the virtual camera (what a calibration would measure)."""

    height_mm: float = Field(1100.0, gt=0, le=100_000)
    hfov_deg: float = Field(60.0, gt=1, lt=170)
    centre_x_mm: float | None = Field(None, ge=-100_000, le=100_000, description="None: over the belt centre")
    centre_y_mm: float = Field(0.0, ge=-100_000, le=100_000)
    tilt_deg: float = Field(0.0, ge=-45, le=45)
    dist: tuple[float, float, float, float, float] = (-0.04, 0.01, 0.0, 0.0, 0.0)

    @field_validator("dist")
    @classmethod
    def _small_distortion(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(abs(x) > 10 for x in v):
            raise ValueError("distortion coefficients between -10 and 10, e.g. [-0.04, 0.01, 0, 0, 0]")
        return v


class SimConfig(_Strict):
    """The simulated world: belt, objects, camera rendering and actuator physics."""

    seed: int = Field(1, ge=0, lt=2**63, description="everything random follows from it")
    density_per_m2: float = Field(1.0, ge=0, le=60, description="objects per square metre of belt")
    belt_speed_mm_s: float | None = Field(None, gt=0, le=10_000, description="true mean speed; None: belt.nominal_speed_mm_s")
    speed_drift_fraction: float = Field(0.02, ge=0, le=0.5, description="amplitude of slow speed drift")
    speed_drift_period_s: float = Field(23.0, gt=0, le=1e6)
    speed_steps: tuple[SpeedStep, ...] = ()
    class_mix: dict[str, float] = Field(default_factory=dict, description="relative frequency per class; default equal")
    slide_fraction: float = Field(0.15, ge=0, le=1, description="share of objects that slide or roll on the belt")
    slide_speed_mm_s: float = Field(40.0, ge=0, le=1000, description="max residual speed of sliding objects")
    spawn_margin_mm: float = Field(300.0, ge=0, le=10_000)

    @field_validator("class_mix")
    @classmethod
    def _known_mix(cls, v: dict[str, float]) -> dict[str, float]:
        from sorter.entities import MATERIAL_CLASSES

        unknown = [c for c in v if c not in MATERIAL_CLASSES]
        if unknown:
            raise ValueError(f"class names as keys ({', '.join(MATERIAL_CLASSES)}), not {unknown}")
        if any(not 0 <= x <= 1e6 for x in v.values()):
            raise ValueError("shares from 0 to 1e6 (classes not listed weigh 1), e.g. {pet_bottle: 2, film: 1}")
        return v
    mount: SimMountConfig = SimMountConfig()
    render: bool = True
    motion_blur: bool = True
    exposure_ms: float = Field(0.5, ge=0, le=100)
    noise_sigma: float = Field(3.0, ge=0, le=255)
    lighting_variation: float = Field(0.15, ge=0, le=1)
    valve_latency_ms: float = Field(3.0, ge=0, le=1000, description="true command-to-air delay of the virtual valves")
    valve_jitter_ms: float = Field(0.15, ge=0, le=100)
    valve_min_pulse_ms: float = Field(2.0, gt=0, le=1000, description="shortest air pulse the virtual valves produce")
    eject_min_coverage: float = Field(0.5, gt=0, le=1, description="footprint share the air must cover to eject")
    robot_cycle_ms: float = Field(600.0, gt=0, le=600_000)
    robot_tolerance_mm: float = Field(15.0, gt=0, le=10_000)
    robot_jitter_mm: float = Field(2.0, ge=0, le=10_000)

    def max_speed_mm_s(self, nominal_mm_s: float) -> float:
        """Highest true belt speed the simulation can reach (for the camera-rate check)."""
        base = self.belt_speed_mm_s or nominal_mm_s
        speeds = [base] + [s.speed_mm_s for s in self.speed_steps]
        return max(speeds) * (1.0 + self.speed_drift_fraction)
