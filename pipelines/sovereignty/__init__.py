"""Sovereignty: where personal data may go (at rest) and where it may be processed.

Owns the storage policy of routes (:mod:`.policy`: personal data by name and by the registry,
allowed routes, egress prices) and compute sovereignty (:mod:`.compute`: the worker's declared
jurisdictions, refusals before a byte is read). Imports only :mod:`pipelines.lake`.
"""
