"""Replication: Delta tables kept in sync between locations, from the Delta log.

Owns the Delta-log reader that the sync and upkeep share (:mod:`.deltalog`), the planner that
decides from the two logs alone what a sync copies (:mod:`.plan`), and the executor, its
verification and the entry points (:mod:`.sync`). Every route goes through
:mod:`pipelines.sovereignty` first. Imports :mod:`pipelines.lake` and :mod:`pipelines.sovereignty`.
"""
