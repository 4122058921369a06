"""Example sorter plugin: ``example_pattern`` camera, ``example_blobs`` detector, ``example_log`` actuator."""
