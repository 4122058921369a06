"""Belt-frame tracker (pure logic: standard library, numpy and ``sorter.entities`` only).

Association in belt-fixed coordinates with the odometer, residual-motion
Kalman filters over belt travel, class votes, and ageing by time and travel
(never by frame count).
"""

from sorter.track.params import TrackerOutput, TrackerParams
from sorter.track.tracker import BeltTracker

__all__ = ["BeltTracker", "TrackerOutput", "TrackerParams"]
