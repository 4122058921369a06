"""Belt-frame tracker (pure logic: standard library, numpy, scipy's assignment solver and ``sorter.entities`` only).

Association in belt-fixed coordinates with the odometer, residual-motion
Kalman filters over belt travel, class votes, confirmation on evidence
gathered over belt travel, and ageing by time and travel (never by frame
count). All tracks are columns of a few arrays, so an update is a fixed
number of vectorised steps whatever the number of objects in view.
"""

from sorter.track.params import TrackerOutput, TrackerParams, UpdateStats
from sorter.track.tracker import BeltTracker

__all__ = ["BeltTracker", "TrackerOutput", "TrackerParams", "UpdateStats"]
