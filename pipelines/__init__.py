"""Engines, free of Dagster, and the code location in definitions.py."""
