"""Spacecraft bus models (power, thermal, radiation) and the governor that runs the GPU on them."""
