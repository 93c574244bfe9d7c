"""Charging stations: their identity, credentials and lifecycle."""
