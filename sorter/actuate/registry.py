"""Registry of actuators, keyed by ``actuator.type``: built-ins below, plugins through entry points.

Every factory has the signature ``(cfg: Config, clock: Clock, plant: PlantPort) -> Actuator`` and is imported
only when its type is used. ``plant`` lends the simulated line's devices (``sorter.sim.plant``); on a real line
it lends nothing (``sorter.actuate.base.NoPlant``) and the actuator reaches its hardware itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sorter.actuate.base import Actuator, PlantPort
from sorter.plugins import check_built, load, resolve

if TYPE_CHECKING:
    from sorter.clock import Clock
    from sorter.config import Config

#: actuator.type -> ``module:function`` of its factory
ACTUATORS: dict[str, str] = {
    "virtual": "sorter.actuate.virtual:create_virtual_actuator",
    "dry_run": "sorter.actuate.dry_run:create_dry_run_actuator",
    "serial": "sorter.actuate.bridge:create_bridge_actuator",
    "modbus": "sorter.actuate.bridge:create_bridge_actuator",
    "host_timed": "sorter.actuate.host_timed:create_host_timed_actuator",
}


def create_actuator(cfg: Config, clock: Clock, plant: PlantPort) -> Actuator:
    """Build the configured actuator.

    Raises:
        ConfigError: unknown type, or a type this plant cannot serve (e.g. ``virtual`` on a real line).
        DeviceNotConnectedError: a controller that did not answer at start-up.
    """
    ref = resolve("actuator", cfg.actuator.type, ACTUATORS, "actuator.type")
    actuator = load(ref)(cfg, clock, plant)
    check_built(ref, actuator, Actuator)
    return actuator  # type: ignore[no-any-return]
