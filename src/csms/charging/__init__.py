"""Charging: sessions started for a car, and their Charge Detail Records."""
