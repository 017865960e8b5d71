"""Orbital data-centre planner: size it from the orbit twin's sunlight and test the economics."""
