"""Operators: the people who run the CSMS and register its stations."""
