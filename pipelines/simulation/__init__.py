"""Simulation: demand events in the capture formats, with drift and bad records injected.

Owns the event simulator (:mod:`.simulate`) that `make run`, tests and benchmarks land data
with. Imports :mod:`pipelines.lake` and :mod:`pipelines.ingest` (the capture formats it writes).
"""
