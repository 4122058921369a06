"""actuate: where planned commands go (Actuator protocol, registry, link opener, actuators)."""
