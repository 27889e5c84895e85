"""Replication: Delta tables kept in sync between locations, from the Delta log.

Owns the log reader, the planner, the executor and replica verification (:mod:`.sync`). Every
route goes through :mod:`pipelines.sovereignty` first. Imports :mod:`pipelines.lake` and
:mod:`pipelines.sovereignty`.
"""
