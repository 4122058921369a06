"""Calibration maths: camera intrinsics, camera-to-belt pose, encoder scale, valve timing.

One module per job. Pure logic takes arrays and returns frozen results; file
and device I/O lives in :mod:`sorter.calib_store` (calibration files),
:mod:`sorter.calib.sources` (images, recordings, cameras) and the ``sorter calibrate``
command, which also wires the simulated line's views (:mod:`sorter.sim.calib_views`)
and controller links (:mod:`sorter.actuate.links`). This package imports neither.
"""
