"""The registry shape shared by the stages: resolving a type, loading its factory, checking what it built."""

from __future__ import annotations

import pytest

from sorter.actuate.base import Actuator
from sorter.actuate.registry import ACTUATORS
from sorter.capture.registry import SOURCES
from sorter.config import ACTUATOR_TYPES, CAMERA_TYPES, DETECTOR_TYPES, Config
from sorter.detect.base import Detector
from sorter.detect.registry import DETECTORS
from sorter.errors import ConfigError
from sorter.plugins import FactoryRef, check_built, check_type_name, load, protocol_members, resolve


def test_the_schema_knows_exactly_the_registered_built_ins() -> None:
    assert set(CAMERA_TYPES) == {"sim", *SOURCES}  # the simulated camera is built by the simulated plant
    assert set(DETECTOR_TYPES) == set(DETECTORS)
    assert set(ACTUATOR_TYPES) == set(ACTUATORS)


@pytest.mark.parametrize("registry", [SOURCES, DETECTORS, ACTUATORS])
def test_every_built_in_factory_loads(registry: dict[str, str]) -> None:
    for target in set(registry.values()):
        kind = "camera" if registry is SOURCES else "detector" if registry is DETECTORS else "actuator"
        assert callable(load(FactoryRef(kind, "x", target)))  # type: ignore[arg-type]


def test_an_unknown_type_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as e:
        resolve("actuator", "acme_robot", ACTUATORS, "actuator.type")
    msg = str(e.value)
    assert "actuator.type = 'acme_robot' is unknown" in msg and "built-in: virtual, dry_run, serial" in msg
    with pytest.raises(ValueError, match="unknown detector type 'yolo'; valid types are built-in: oracle, onnxruntime"):
        check_type_name("detector", "yolo", DETECTOR_TYPES)


def test_the_config_refuses_an_unknown_type_naming_the_valid_ones() -> None:
    with pytest.raises(Exception) as e:
        Config.model_validate({"camera": {"type": "webcam"}})
    assert "unknown camera type 'webcam'" in str(e.value) and "sim, opencv, video" in str(e.value)


def test_a_factory_that_cannot_be_imported_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"detector type 'x' \(plugin acme 1.0, no_such_module:create\) cannot be imported"):
        load(FactoryRef("detector", "x", "no_such_module:create", "plugin acme 1.0"))
    with pytest.raises(ConfigError, match="is missing"):
        load(FactoryRef("detector", "x", "sorter.detect.oracle:no_such_function", "plugin acme 1.0"))


class HalfActuator:
    """Submits, but lacks the rest of the Actuator protocol."""

    closed = False

    def submit(self, commands: object) -> None: ...

    def close(self) -> None:
        HalfActuator.closed = True


def test_what_a_plugin_builds_is_checked_against_the_stage_protocol() -> None:
    assert {"submit", "cancel", "poll_reports", "wait_idle", "stats", "encoder", "close"} <= set(protocol_members(Actuator))
    assert {"needs_pixels", "class_names", "detect", "close"} <= set(protocol_members(Detector))
    ref = FactoryRef("actuator", "half", "acme:create", "plugin acme 1.0")
    with pytest.raises(ConfigError) as e:
        check_built(ref, HalfActuator(), Actuator)
    msg = str(e.value)
    assert "actuator type 'half' (plugin acme 1.0) built a HalfActuator without" in msg
    assert "cancel" in msg and "encoder" in msg and "submit" not in msg.split("without")[1]
    assert HalfActuator.closed  # what it opened is released
