"""Ejection and pick planning (pure logic: standard library, numpy and ``sorter.entities`` only).

``policy`` says what to sort out, ``timing`` turns tracks into odometer
positions and valves, ``planner`` (air jets) and ``robot`` (picks) take one
decision per confirmed track and emit position-stamped commands.
"""

from sorter.schedule.planner import AirjetParams, AirjetPlanner
from sorter.schedule.policy import PolicyParams
from sorter.schedule.results import Decision, PlanResult
from sorter.schedule.robot import RobotParams, RobotPlanner

__all__ = ["AirjetParams", "AirjetPlanner", "Decision", "PlanResult", "PolicyParams", "RobotParams", "RobotPlanner"]
