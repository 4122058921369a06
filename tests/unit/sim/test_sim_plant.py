"""The simulated plant: one object with the world, the camera, the device lent to actuators, and the score."""

from __future__ import annotations

import threading

import pytest

from sorter.actuate.base import NoPlant
from sorter.actuate.virtual import VirtualActuator
from sorter.clock import ManualClock, MonotonicClock
from sorter.config import load_config
from sorter.entities import FireCommand, PickCommand
from sorter.runtime.params import target_class_ids
from sorter.runtime.plant import RealPlant, build_plant
from sorter.sim.device import SimDevice
from sorter.sim.ejector import ValveBankModel
from sorter.sim.plant import SimPlant
from sorter.sim.robot import RobotModel


def test_an_airjet_plant_lends_its_valve_bank_three_ways() -> None:
    cfg = load_config(None, ["sim.density_per_m2=2"])
    clock = ManualClock(5_000_000_000)
    plant = SimPlant(cfg, clock, target_class_ids(cfg))
    assert plant.world.t0_ns == 5_000_000_000 and isinstance(plant.device, ValveBankModel)
    port = plant.port()
    device = port.in_process_device()
    s_now = plant.world.odometer_mm(clock.now_ns())
    fire = FireCommand(1, 0, 0, 1, s_now + 500.0, s_now + 520.0, s_now + 510.0, 0, clock.now_ns())
    late = FireCommand(2, 0, 0, 1, s_now - 5.0, s_now + 20.0, s_now + 10.0, 0, clock.now_ns())
    assert device.schedule([fire, late], clock.now_ns()) == ["accepted", "late"]
    plant.advance_to(clock.now_ns() + 1_000_000_000)  # 2.5 m/s: well past the pulse
    (report,) = device.executions()
    assert report.command_id == 1 and report.status == "executed" and report.s_actual_mm is not None
    emulated = port.emulated_device(2560.0)
    assert isinstance(emulated, SimDevice) and emulated.cpm == 2560.0 and emulated.valve_count == cfg.airjet.valves.count
    relay = port.relay_output(MonotonicClock())
    assert relay is not None
    assert plant.odometer_source == "simulated encoder" and plant.simulated() is plant


def test_a_stopping_line_gives_every_command_on_the_virtual_valves_its_outcome() -> None:
    """A run that stops (SIGTERM, end of a fast run) with pulses still queued: what was due executes,
    what was not started is cancelled, what was blowing is executed (cut short)."""
    cfg = load_config(None, [])
    clock = ManualClock(1_000_000_000)
    plant = SimPlant(cfg, clock, target_class_ids(cfg))
    actuator = VirtualActuator(plant.port().in_process_device(), clock)
    s0 = plant.world.odometer_mm(clock.now_ns())
    t0 = clock.now_ns()
    due = FireCommand(1, 0, 0, 1, s0 + 10.0, s0 + 20.0, s0 + 15.0, 0, t0)  # 2.5 m/s: done 8 ms later
    blowing = FireCommand(2, 0, 2, 3, s0 + 40.0, s0 + 90.0, s0 + 65.0, 0, t0)  # open from 16 ms to 36 ms
    ahead = FireCommand(3, 0, 4, 5, s0 + 500.0, s0 + 520.0, s0 + 510.0, 0, t0)
    actuator.submit([due, blowing, ahead])
    assert [r.status for r in actuator.poll_reports()] == ["accepted"] * 3
    clock.advance_ns(25_000_000)
    plant.advance_to(clock.now_ns())  # the last frame, 25 ms later
    actuator.finish_outstanding()
    outcome = {r.command_id: r for r in actuator.poll_reports()}
    assert {cid: r.status for cid, r in outcome.items()} == {1: "executed", 2: "executed", 3: "cancelled"}
    assert outcome[2].detail == "cut short: the line stopped" and outcome[1].detail == ""  # 2 was blowing
    assert outcome[2].s_actual_mm is not None and abs(outcome[2].s_actual_mm - (s0 + 40.0)) < 5.0
    assert actuator.stats()["cancelled"] == 1
    assert actuator.poll_reports() == []
    actuator.close()  # the valves close: the cut pulse is judged, reported no second time
    assert actuator.poll_reports() == []


def test_a_stopping_robot_line_cancels_the_picks_not_attempted() -> None:
    cfg = load_config("sim-robot.yaml")
    clock = ManualClock(1_000_000_000)
    plant = SimPlant(cfg, clock, target_class_ids(cfg))
    actuator = VirtualActuator(plant.port().in_process_device(), clock)
    s0 = plant.world.odometer_mm(clock.now_ns())
    y_pick = (cfg.robot.window_y_start_mm + cfg.robot.window_y_end_mm) / 2
    pick = PickCommand(7, 0, (cfg.robot.x_min_mm + cfg.robot.x_max_mm) / 2, y_pick - s0 - 300.0, s0 + 300.0, 1, 1.0, 0)
    actuator.submit([pick])
    assert [r.status for r in actuator.poll_reports()] == ["accepted"]
    actuator.finish_outstanding()
    assert [(r.command_id, r.status) for r in actuator.poll_reports()] == [(7, "cancelled")]


def test_a_robot_plant_has_no_relay_outputs_and_scores_picks() -> None:
    cfg = load_config("sim-robot.yaml")
    plant = SimPlant(cfg, ManualClock(), target_class_ids(cfg))
    assert isinstance(plant.device, RobotModel)
    assert plant.port().relay_output(MonotonicClock()) is None
    assert "picks_attempted" in plant.score()


def test_fast_captures_advance_the_world_and_carry_the_encoder() -> None:
    cfg = load_config(None, ["sim.density_per_m2=4"])
    plant = SimPlant(cfg, ManualClock(), target_class_ids(cfg))
    plant.prepare(render=False)
    frame = plant.capture(500_000_000, 30)
    assert plant.now_ns == 500_000_000 and frame.frame_index == 30 and frame.image.size == 0
    assert frame.truth is not None and len(frame.truth) > 0
    assert frame.s_capture_mm == pytest.approx(plant.world.odometer_mm(500_000_000), abs=1.0 / cfg.belt.encoder_counts_per_mm)


def test_the_live_camera_renders_at_the_camera_rate_and_reports_a_render_error() -> None:
    cfg = load_config(None, ["sim.density_per_m2=1"])
    plant = SimPlant(cfg, MonotonicClock(), target_class_ids(cfg))
    plant.prepare(render=False)
    lost: list[int] = []
    stop = threading.Event()
    source = plant.live_source(stop, lost.append)
    source.start()
    frames = [f for f in (source.latest(1.0) for _ in range(3)) if f is not None]
    assert len(frames) == 3 and frames[0].frame_index < frames[1].frame_index < frames[2].frame_index

    def broken(*args: object) -> object:
        raise RuntimeError("renderer failed")

    plant.world.capture = broken  # type: ignore[method-assign]
    assert stop.wait(2.0)  # the run is stopped...
    with pytest.raises(RuntimeError, match="renderer failed"):
        source.close()  # ...and the error surfaces when the camera is closed


def test_a_real_or_replayed_line_has_a_plant_that_lends_nothing() -> None:
    cfg = load_config(None)
    replay = build_plant(cfg, ManualClock(), frozenset({0}), fast=False, replay=True)
    assert isinstance(replay, RealPlant) and replay.source is None and replay.odometer_source == "none"
    assert isinstance(replay.port(), NoPlant) and replay.simulated() is None and replay.score() == {}
    real = load_config(None, ["camera.type=video", "camera.uri=x.mp4", "detector.type=onnxruntime"])
    with pytest.raises(ValueError, match=r"--fast needs camera\.type: sim"):
        build_plant(real, ManualClock(), frozenset({0}), fast=True, replay=False)
