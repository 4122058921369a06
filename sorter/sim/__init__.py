"""The simulated plant: belt, objects, camera renderer, valve-bank and robot physics, scoring (``plant.SimPlant``).

Import the modules you need (``sorter.sim.world.SimWorld`` ...): this package
imports nothing heavy itself, because ``sorter.config`` loads ``sorter.sim.config``.
"""
