"""Engines, free of Dagster, in domain packages (docs/architecture.md has the map).

``lake`` (configuration, table registry, storage, Delta I/O) is the base; ``ingest`` and
``sovereignty`` build on it; ``replication``, ``spark``, ``ml`` and ``simulation`` on those;
``operations`` on all. import-linter (``make check``) holds every domain to its layer.
"""
