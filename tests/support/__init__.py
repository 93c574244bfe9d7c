"""Helpers shared by the tests: clocks, databases, station clients."""
