"""The mission: the orbit twin, the bus, the governor, the trainer and the fault runtime on one
simulated clock, every frame archived (see skyrack.mission.loop)."""
