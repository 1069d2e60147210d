"""Metrics with ranx, paired per query."""
