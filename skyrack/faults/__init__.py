"""Radiation-style faults and the protection that survives them."""
