"""Calibration maths: camera intrinsics, camera-to-belt pose, encoder scale, valve timing.

One module per job. Pure logic takes arrays and returns frozen results; file
and device I/O lives in :mod:`sorter.calib_store`, :mod:`sorter.calib.sources`
and the ``sorter calibrate`` command.
"""
