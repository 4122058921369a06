"""Virtual sorting line: belt, objects, camera renderer, valve-bank and robot physics, scoring.

Import the modules you need (``sorter.sim.world.SimWorld`` ...): this package
imports nothing heavy itself, because ``sorter.config`` loads ``sorter.sim.config``.
"""
