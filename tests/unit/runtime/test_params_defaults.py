"""One source of defaults: the pure stages' parameter dataclasses never default a value differently from the schema.

``sorter.runtime.params`` builds the parameters from a config; built from the default config, they must equal
the dataclasses' own defaults (given the values that come from the camera, which the schema does not hold).
"""

from __future__ import annotations

import pytest

from sorter.config import Config
from sorter.runtime.params import airjet_params, policy_params, robot_params, tracker_params
from sorter.runtime.plant import camera_model
from sorter.schedule import AirjetParams, PolicyParams, RobotParams
from sorter.track import TrackerParams


def test_policy_defaults_are_the_schemas() -> None:
    assert policy_params(Config()) == PolicyParams()


def test_airjet_defaults_are_the_schemas() -> None:
    cfg = Config()
    built = airjet_params(cfg, camera_model(cfg))
    # y_eject_mm has no default: the schema's (800 mm) is the only one
    assert built == AirjetParams(y_eject_mm=built.y_eject_mm, view_end_y_mm=built.view_end_y_mm)
    assert built.y_eject_mm == cfg.airjet.y_eject_mm == 800.0
    with pytest.raises(TypeError):
        AirjetParams()  # type: ignore[call-arg]


def test_robot_defaults_are_the_schemas() -> None:
    cfg = Config()
    built = robot_params(cfg, camera_model(cfg))
    assert built == RobotParams(view_end_y_mm=built.view_end_y_mm)


def test_tracker_defaults_are_the_schemas() -> None:
    cfg = Config()
    built = tracker_params(cfg, camera_model(cfg))
    assert built == TrackerParams(view_y_min_mm=built.view_y_min_mm, view_y_max_mm=built.view_y_max_mm)
