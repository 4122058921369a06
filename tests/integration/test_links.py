"""The one link opener: every configured setting reaches the link, against real emulators (pymodbus, socat)."""

from __future__ import annotations

import shutil

import pytest

from firmware_bridge.device import FreeRunningDevice
from firmware_bridge.messages import Fire
from sorter.actuate.links import link_counts_per_mm, open_link, simulation_limits
from sorter.config import load_config
from sorter.errors import ConfigError, DeviceNotConnectedError

needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")


def test_modbus_settings_reach_the_link_and_the_emulator_answers() -> None:
    cfg = load_config(None, ["actuator.type=modbus", "actuator.modbus.heartbeat_ms=15", "actuator.modbus.timeout_ms=80",
                             "actuator.modbus.unit_id=7"])
    opened = open_link(cfg.actuator, emulate=FreeRunningDevice(8, 25_000.0), limits=simulation_limits(80.0))
    try:
        link = opened.link
        assert opened.where.startswith("PLC at 127.0.0.1:") and opened.where.endswith("(emulated)")
        assert link.cfg.heartbeat_ms == 15.0 and link.client.unit_id == 7  # type: ignore[union-attr]
        opened.wait_ready_or_raise(3.0)
        st = link.request_status(2.0)
        assert st is not None and st.queue_capacity == 64  # the PLC caps the simulation's 256 at its 64 slots
        count = st.encoder_count
        link.submit(Fire(1, 0, 0, count + 2500, count + 2600))
        assert link.wait_idle(10.0)
    finally:
        opened.close()
    assert opened.emulator is not None and not opened._stops  # emulator stopped with the link


@needs_socat
def test_serial_settings_reach_the_session() -> None:
    cfg = load_config(None, ["actuator.type=serial", "actuator.serial.ack_timeout_ms=35",
                             "actuator.serial.heartbeat_ms=12", "actuator.serial.baudrate=115200"])
    opened = open_link(cfg.actuator, emulate=FreeRunningDevice(8, 25_000.0))
    try:
        s = opened.link.session  # type: ignore[union-attr]
        assert (s.cfg.ack_timeout_ns, s.cfg.heartbeat_ns) == (35_000_000, 12_000_000)
        assert opened.link.baudrate == 115200  # type: ignore[union-attr]
        assert opened.where == f"valve controller on {opened.link.url} (emulated)"  # type: ignore[union-attr]
        opened.wait_ready_or_raise(3.0)
        assert opened.link.ping(2.0)
    finally:
        opened.close()


def test_a_monitor_never_arms_and_a_silent_controller_is_a_clear_error() -> None:
    cfg = load_config(None, ["actuator.type=modbus", "actuator.modbus.port=1", "actuator.modbus.timeout_ms=50"])
    opened = open_link(cfg.actuator, arm=False)
    assert opened.where == "PLC at 127.0.0.1:1" and not opened.link.arm_enabled
    with pytest.raises(DeviceNotConnectedError, match=r"PLC at 127.0.0.1:1 did not answer within 0.3 s; check actuator.modbus"):
        opened.wait_ready_or_raise(0.3)


def test_only_controller_links_open_and_counts_follow_the_config() -> None:
    cfg = load_config(None, ["actuator.type=dry_run"])
    with pytest.raises(ConfigError, match="'dry_run' is not a controller link"):
        open_link(cfg.actuator)
    assert link_counts_per_mm(cfg) == cfg.belt.encoder_counts_per_mm
    assert link_counts_per_mm(load_config("sim-airjet-serial.yaml")) == 2560
