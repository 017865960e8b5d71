"""Telemetry: the one dictionary of channels, events and commands, and the SQLite archive."""
