"""The one strict configuration schema, and loading with clear errors.

Every section forbids unknown keys. ``load_config`` merges several YAML files
(a base plus per-site overrides) and ``key.path=value`` overrides, validates,
and runs the checks its caller passes (the runtime refuses physically impossible
setups, which needs the camera model: ``sorter.runtime.preflight``). Every problem
is reported as one line naming the key path, the bad value and what is expected.
This module imports nothing above the schema (entities, errors, plugin names).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from sorter.analytics.alerts import AlertsConfig
from sorter.detect.roi_config import RoiConfig
from sorter.entities import MATERIAL_CLASSES
from sorter.errors import ConfigError
from sorter.plugins import check_type_name
from sorter.sim.config import SimConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

#: built-in ``type`` values of the stages (their registries: ``sorter.capture.registry.SOURCES`` plus the simulated
#: camera, ``sorter.detect.registry.DETECTORS``, ``sorter.actuate.registry.ACTUATORS``); plugins add more
CAMERA_TYPES = ("sim", "opencv", "video", "images", "rtsp", "gstreamer", "aravis")
DETECTOR_TYPES = ("oracle", "onnxruntime", "tensorrt", "torch")
ACTUATOR_TYPES = ("virtual", "dry_run", "serial", "modbus", "host_timed")
DEFAULT_CONFIG = "sim-airjet.yaml"
#: the belt's top speed when ``belt.max_speed_mm_s`` is not set, relative to the nominal speed (drives run ~20 % over)
TOP_SPEED_FACTOR = 1.25


class Strict(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LineConfig(Strict):
    """What kind of line this is."""

    name: str = "line"
    mode: Literal["airjet", "robot"] = "airjet"


class BeltConfig(Strict):
    """Belt geometry and odometry."""

    width_mm: float = Field(1200.0, gt=0, le=5000)
    nominal_speed_mm_s: float = Field(2500.0, gt=0, le=10000)
    max_speed_mm_s: float | None = Field(None, gt=0, le=10000, description="fastest the belt can run (its drive's limit); "
                                         f"null: {TOP_SPEED_FACTOR:g} x nominal_speed_mm_s")
    encoder_counts_per_mm: float = Field(10.0, gt=0, le=1e6, description="encoder counts per mm of belt; the calibration's "
                                         "encoder section sets it")
    speed_filter_ms: float = Field(50.0, gt=0, le=10_000, description="window of the belt-speed estimate")

    @model_validator(mode="after")
    def _top_speed(self) -> BeltConfig:
        if self.max_speed_mm_s is not None and self.max_speed_mm_s < self.nominal_speed_mm_s:
            raise ValueError(f"max_speed_mm_s ({self.max_speed_mm_s:g}) at least nominal_speed_mm_s "
                             f"({self.nominal_speed_mm_s:g}): set it to the belt drive's top speed, or null")
        return self

    def top_speed_mm_s(self) -> float:
        """The fastest the belt can move: ``max_speed_mm_s``, else ``TOP_SPEED_FACTOR`` x the nominal speed."""
        return self.max_speed_mm_s or TOP_SPEED_FACTOR * self.nominal_speed_mm_s


class CameraConfig(Strict):
    """Frame source. ``type: sim`` renders from the simulator."""

    type: str = Field("sim", description=f"one of {', '.join(CAMERA_TYPES)}, or a camera plugin's name")
    uri: str | None = None
    width_px: int = Field(1280, ge=64, le=8192)
    height_px: int = Field(720, ge=64, le=8192)
    fps: float = Field(60.0, gt=0, le=1000)
    calibration_file: str | None = None
    calibration_max_age_days: float = Field(180.0, gt=0, le=36_500, description="warn when the calibration is older than this")
    stale_after_ms: float = Field(250.0, gt=0, le=600_000)
    options: dict[str, Any] = Field(default_factory=dict, description="settings of a camera plugin (free-form)")

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        return check_type_name("camera", v, CAMERA_TYPES)


class OracleConfig(Strict):
    """Noise of the ``oracle`` detector (ground truth made imperfect)."""

    miss_rate: float = Field(0.05, ge=0, le=1)
    class_confusion: float = Field(0.02, ge=0, le=1)
    false_positives_per_frame: float = Field(0.02, ge=0, le=100)
    box_jitter_px: float = Field(1.5, ge=0, le=1000)
    min_visible_fraction: float = Field(0.5, ge=0, le=1)
    seed: int = Field(12345, ge=0, lt=2**63)


class DetectorConfig(Strict):
    """Detector backend and its settings."""

    type: str = Field("oracle", description=f"one of {', '.join(DETECTOR_TYPES)}, or a detector plugin's name")
    model: str | None = None
    min_score: float = Field(0.3, ge=0, le=1)
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    device: str = "cpu"
    engine_cache_dir: str | None = None
    oracle: OracleConfig = OracleConfig()
    roi: RoiConfig = RoiConfig()
    options: dict[str, Any] = Field(default_factory=dict, description="settings of a detector plugin (free-form)")

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        return check_type_name("detector", v, DETECTOR_TYPES)


class TrackerConfig(Strict):
    """Belt-frame tracker. Ageing is by time and belt travel, never frame count."""

    gate_mm: float = Field(80.0, gt=0, le=10_000, description="association gate radius in belt-fixed mm")
    min_hits: int = Field(3, ge=1, le=1000, description="detections that always confirm a track (acted upon)")
    confirm_hits: int = Field(
        2, ge=1, le=1000, description="detections in consecutive frames that confirm a track once they span confirm_travel_mm"
    )
    confirm_travel_mm: float = Field(120.0, ge=0, le=100_000, description="travel the confirm_hits must span (> gate_mm)")
    confirm_single_score: float | None = Field(
        None, gt=0, le=1, description="one detection scoring at least this confirms its track; null: never on one view"
    )
    confirm_needs_full_view: bool = Field(
        True, description="confirm a track only once a box of it was not cut at an end of the camera view"
    )
    max_unseen_ms: float = Field(400.0, gt=0, le=60_000)
    max_unseen_travel_mm: float = Field(400.0, gt=0, le=100_000)
    measurement_sigma_mm: float = Field(4.0, gt=0, le=1000)
    residual_process_sigma: float = Field(0.01, ge=0, le=10, description="residual velocity noise per mm travel")
    class_prior_votes: float = Field(0.2, gt=0, le=100, description="pseudo-vote per class in a track's class confidence")


class ValveBankConfig(Strict):
    """A row of air valves across the belt on the ejection line."""

    count: int = Field(64, ge=1, le=1024)
    pitch_mm: float = Field(18.75, gt=0, le=1000)
    x_first_mm: float = Field(0.0, ge=-10_000, le=10_000, description="left edge of valve 0's air curtain, across the belt")
    latency_ms: float = Field(3.0, ge=0, le=1000, description="command-to-air delay compensated by a lead; set by the "
                              "calibration's valve timing (set here: an override)")
    latency_per_valve_ms: dict[int, float] = Field(
        default_factory=dict,
        description="delay of single valves (index: ms), set by the calibration's valve timing; others use latency_ms",
    )
    min_pulse_ms: float = Field(4.0, gt=0, le=10_000)
    max_pulse_ms: float = Field(80.0, gt=0, le=10_000)
    margin_mm: float = Field(10.0, ge=0, le=1000, description="extra air before and after the object")
    lateral_margin_mm: float = Field(5.0, ge=0, le=1000)

    @field_validator("latency_per_valve_ms")
    @classmethod
    def _latencies(cls, v: dict[int, float]) -> dict[int, float]:
        bad = {k: x for k, x in v.items() if k < 0 or not 0 <= x <= 1000}
        if bad:
            raise ValueError(f"valve indices from 0 and delays in 0..1000 ms, e.g. {{0: 3.1}} (not {bad})")
        return v


class AirjetConfig(Strict):
    """Air-jet ejection geometry."""

    y_eject_mm: float = Field(800.0, ge=-100_000, le=100_000, description="ejection line, along the belt from the camera "
                              "reference")
    valves: ValveBankConfig = ValveBankConfig()
    decide_before_mm: float = Field(150.0, gt=0, le=100_000, description="final decision this far upstream of the line")


class RobotConfig(Strict):
    """A pick robot downstream of the camera."""

    window_y_start_mm: float = Field(900.0, ge=-100_000, le=100_000)
    window_y_end_mm: float = Field(1700.0, ge=-100_000, le=100_000)
    x_min_mm: float = Field(50.0, ge=-10_000, le=10_000)
    x_max_mm: float = Field(1150.0, ge=-10_000, le=10_000)
    max_picks_per_min: float = Field(60.0, gt=0, le=10_000)
    values: dict[str, float] = Field(default_factory=dict, description="value per class; default 1")

    @field_validator("values")
    @classmethod
    def _known_value_classes(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = [c for c in v if c not in MATERIAL_CLASSES]
        if unknown:
            raise ValueError(f"known class names as keys ({', '.join(MATERIAL_CLASSES)}), not {unknown}")
        if any(not -1e6 <= x <= 1e6 for x in v.values()):
            raise ValueError("values between -1e6 and 1e6")
        return v


class PolicyConfig(Strict):
    """What to sort out."""

    targets: tuple[str, ...] = ("pet_bottle",)
    min_confidence: float = Field(0.5, ge=0, le=1)
    min_length_mm: float = Field(15.0, ge=0, le=10_000)
    max_length_mm: float = Field(700.0, gt=0, le=10_000)
    touching_nontarget: Literal["eject", "skip", "eject_if_larger"] = "eject"
    touching_gap_mm: float = Field(5.0, ge=0, le=1000)

    @field_validator("targets")
    @classmethod
    def _known_classes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in v if c not in MATERIAL_CLASSES]
        if unknown:
            raise ValueError(f"unknown class name(s) {unknown}; known classes are: {', '.join(MATERIAL_CLASSES)}")
        if not v:
            raise ValueError("at least one target class is needed")
        return v


class SerialLinkConfig(Strict):
    """A controller on a serial port (pyserial URL)."""

    url: str = "/dev/ttyACM0"
    baudrate: int = Field(921600, gt=0, le=100_000_000)
    ack_timeout_ms: float = Field(20.0, gt=0, le=10_000)
    heartbeat_ms: float = Field(25.0, gt=0, le=10_000, description="below half the controller's 100 ms watchdog")


class ModbusLinkConfig(Strict):
    """A PLC over Modbus TCP or RTU."""

    transport: Literal["tcp", "rtu"] = "tcp"
    host: str = "127.0.0.1"
    port: int = Field(502, ge=1, le=65535)
    serial_url: str | None = None
    baudrate: int = Field(115200, gt=0, le=100_000_000)
    unit_id: int = Field(1, ge=0, le=247)
    timeout_ms: float = Field(100.0, gt=0, le=60_000)
    heartbeat_ms: float = Field(25.0, gt=0, le=10_000, description="below half the PLC's 100 ms watchdog")


class ActuatorConfig(Strict):
    """Where commands go."""

    type: str = Field("virtual", description=f"one of {', '.join(ACTUATOR_TYPES)}, or an actuator plugin's name")
    emulator: bool | Literal["python", "firmware"] = Field(
        True,
        description="with type serial/modbus in simulation: start the device emulator (true or 'python': the Python "
        "emulator; 'firmware': serial only, the C firmware of firmware/ on its emulated board, built with make; "
        "needs gcc-avr, avr-libc, simavr, libsimavr-dev, libelf-dev); false: none",
    )
    counts_per_mm: float | None = Field(
        None,
        gt=0,
        le=1e7,
        description="position units per mm on the controller link; None: belt.encoder_counts_per_mm (finer if it interpolates)",
    )
    serial: SerialLinkConfig = SerialLinkConfig()
    modbus: ModbusLinkConfig = ModbusLinkConfig()
    options: dict[str, Any] = Field(default_factory=dict, description="settings of an actuator plugin (free-form)")

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        return check_type_name("actuator", v, ACTUATOR_TYPES)


class RuntimeConfig(Strict):
    """Loop settings."""

    duration_s: float | None = Field(None, gt=0, le=1e7)
    status_interval_s: float = Field(0.5, gt=0, le=3600)
    join_timeout_s: float = Field(1.0, gt=0, le=600)
    link_process: bool = Field(
        True,
        description="run a serial/Modbus controller link (real or emulated) in its own supervised process, so heartbeats "
        "and command I/O never wait for the vision work; false: a thread of the line's process",
    )
    link_priority: int = Field(10, ge=0, le=99, description="SCHED_FIFO priority of the link process where allowed "
                               "(CAP_SYS_NICE, LimitRTPRIO); 0: only nice -10")
    latency_profile: str = Field(
        "cpu-2core",
        description="--fast charges each stage the processing time of this profile: a name under configs/profiles/ or a file",
    )
    charge: Literal["profile", "wall"] = Field(
        "profile", description="--fast: charge modelled stage times (profile, deterministic) or this machine's (wall)"
    )
    latency_override_ms: dict[str, float] = Field(
        default_factory=dict,
        description="per-stage p50 in ms replacing the profile's (its spread kept), e.g. {detect: 33}",
    )
    prepare_in_capture: bool = Field(
        True, description="live: the capture thread crops, resizes and converts each frame for the detector, overlapping "
        "the previous frame's inference; false: the loop does it before each inference",
    )
    overload_window_s: float = Field(2.0, gt=0, le=600, description="window over which dropped frames and latency are judged")
    overload_degrades: bool = Field(True, description="an overloaded loop degrades the service; false: it is only logged, "
                                    "shown in the status and summary")
    overload_drop_share: float = Field(0.1, gt=0, le=1, description="share of frames dropped over the window above "
                                       "which the loop is overloaded")


class ServiceConfig(Strict):
    """The service around the loop: HTTP endpoint and the token guarding its controls."""

    http_host: str = "127.0.0.1"
    http_port: int | None = Field(None, ge=0, le=65535, description="null: no endpoint; 0: any free port")
    token: str | None = Field(None, description="bearer token for pause/resume/reload; SORTER_TOKEN overrides")
    flight_recorder_dir: str | None = Field(None, description="where the last cycles are dumped on a fault; null: off")
    flight_recorder_cycles: int = Field(600, ge=10, le=100_000)
    token_for_view: bool | None = Field(
        None, description="the live page, image and stream need the token too; null: only when http_host is not loopback"
    )
    view_fps: float = Field(4.0, gt=0, le=30, description="most live images encoded per second, shared by every viewer")
    http_max_connections: int = Field(512, ge=8, le=100_000, description="connections served at once; more get 503")
    http_timeout_s: float = Field(10.0, gt=0, le=600, description="a request head must arrive, and an idle connection is "
                                  "closed, within this time")
    http_process: bool = Field(True, description="serve HTTP from its own process; false: a thread of the line's process")
    http_nice: int = Field(10, ge=0, le=19, description="niceness of the web process: the line's loop wins the CPU")


class AnalyticsConfig(Strict):
    """Event store: one event per finished track."""

    store: str | None = Field(
        None, description="SQLite file path (or sqlite:///path), or postgresql://user@host/db; null: no events stored"
    )
    batch_size: int = Field(256, ge=1, le=100_000)
    flush_interval_s: float = Field(0.5, gt=0, le=60)
    retry_for_s: float = Field(30.0, ge=0, le=3600, description="how long a failing batch is retried (disk full, database "
                               "down) before it is given up")
    min_free_mb: float = Field(100.0, ge=0, le=1e9, description="least free space on the SQLite store's disk; less "
                               "refuses start-up and degrades at run time")
    outcome_wait_s: float = Field(5.0, ge=0, le=600, description="how long an event waits for the controller's report")
    alerts: AlertsConfig = AlertsConfig()


class CollectConfig(Strict):
    """Frames worth labelling, chosen from the running line by the active-learning rules of ``sorter collect``."""

    dir: str | None = Field(None, description="folder of the batches; each run collects into a new batch folder under it; "
                            "null: off")
    band: float = Field(
        0.1, gt=0, lt=1, description="'near the threshold' band (+-): the detector reports boxes down to min_score - band"
    )
    confident_score: float = Field(0.6, gt=0, le=1, description="a detection scoring this high is confident")
    min_track_hits: int = Field(5, ge=1, description="detections of a track before 'never confident' may choose it")
    novelty_distance: float = Field(3.0, gt=0, description="colour-statistics distance (in spreads) of a novel frame")
    random_share: float = Field(0.02, ge=0, le=1, description="share of frames kept at random")
    max_per_hour: int = Field(600, ge=1, description="frames kept per hour of capture")
    max_per_class_per_hour: int = Field(150, ge=1, description="frames kept per predicted class per hour")
    min_gap_ms: float = Field(200.0, ge=0, description="least capture time between two kept frames")
    max_frames: int | None = Field(None, ge=1, description="stop keeping frames after this many per run; null: no limit")
    queue_size: int = Field(8, ge=1, le=1000, description="frames waiting for the collector's thread; more are dropped")
    seed: int = 0


class Config(Strict):
    """The whole configuration of one line."""

    line: LineConfig = LineConfig()
    belt: BeltConfig = BeltConfig()
    camera: CameraConfig = CameraConfig()
    detector: DetectorConfig = DetectorConfig()
    tracker: TrackerConfig = TrackerConfig()
    airjet: AirjetConfig = AirjetConfig()
    robot: RobotConfig = RobotConfig()
    policy: PolicyConfig = PolicyConfig()
    actuator: ActuatorConfig = ActuatorConfig()
    sim: SimConfig = SimConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    service: ServiceConfig = ServiceConfig()
    analytics: AnalyticsConfig = AnalyticsConfig()
    collect: CollectConfig = CollectConfig()

    #: what applying the calibration did (``sorter.runtime.calibrated``); not a key of the file
    _applied: Any = PrivateAttr(default=None)


# ---------------------------------------------------------------------- loading


#: a check of a whole configuration that needs more than the schema (files, models): one line per problem
ConfigCheck = Callable[["Config"], list[str]]


def validate_config_dict(
    data: Mapping[str, Any],
    source: str = "config",
    checks: Sequence[ConfigCheck] = (),
    origins: Mapping[tuple[str, ...], str] | None = None,
) -> Config:
    """Validate a merged mapping, then run ``checks``; raise ``ConfigError`` listing every problem.

    The schema is checked here; what needs files or other parts (the camera model of a calibration file, the
    physics of the line) is a check the caller passes (``sorter.runtime.preflight.physics_problems``).

    Args:
        data: the merged configuration.
        source: names the configuration in messages (the files).
        checks: further checks of the validated configuration.
        origins: key path -> where it was set (file and line, or ``--set``), to blame the right place.
    """
    from sorter.config_words import describe_validation_error

    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, Config, origins or {}, source)) from None
    except RecursionError:  # the reader bounds nesting; a caller's own deep mapping is refused here
        raise ConfigError(f"{source}: nests too deeply to validate; a config needs a few levels") from None
    problems = [p for check in checks for p in check(cfg)]
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    return cfg


def resolve_config_path(path: str | Path) -> Path:
    """Resolve a config name: an existing path, or a file name under the shipped ``configs/``."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    shipped = CONFIG_DIR / p
    return shipped if shipped.exists() else p


def config_paths(files: Sequence[str | Path] | str | Path | None) -> list[Path]:
    """The files ``load_config`` reads for ``files`` (``None`` or empty: the default simulated line)."""
    if isinstance(files, str | Path):  # one file: not a sequence of one-letter paths
        files = [files]
    return [resolve_config_path(f) for f in (files or [DEFAULT_CONFIG])]


def load_config(
    files: Sequence[str | Path] | str | Path | None = None, overrides: Iterable[str] = (), checks: Sequence[ConfigCheck] = ()
) -> Config:
    """Load, merge and validate configuration.

    Relative paths in a file (``camera.calibration_file``, ``detector.model``, ``analytics.store``...) are
    resolved against that file's folder; in ``--set`` overrides, against the current folder.

    Args:
        files: YAML files merged in order (later ones override earlier ones), or one file.
            ``None`` or empty loads the default simulated air-jet line.
        overrides: ``key.path=value`` strings applied last (values parsed as YAML).
        checks: further checks of the validated configuration (see :func:`validate_config_dict`).

    Raises:
        ConfigError: with one line per problem, each naming where the key was set.
    """
    from sorter.config_load import read_layers, resolve_relative_paths

    layers = read_layers(config_paths(files), list(overrides))
    resolve_relative_paths(layers)
    return validate_config_dict(layers.data, layers.source, checks, layers.origins)
