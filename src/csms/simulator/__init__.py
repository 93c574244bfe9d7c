"""Simulated charging stations, for the demo, the tests and load runs."""
