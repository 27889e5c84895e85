"""Replication: Delta tables kept in sync between locations, from the Delta log.

Owns the Delta-log reader that the sync and upkeep share (:mod:`.deltalog`), the planner that
decides from the two logs alone what a sync copies (:mod:`.plan`), and the executor, its
verification and the entry points (:mod:`.sync`, :mod:`.verify`). A caller says what it asks
in one :class:`.options.SyncOptions`; an error it can act on carries a
:class:`.deltalog.Remedy` for it to phrase (no engine message names a flag). Every route goes
through :mod:`pipelines.sovereignty` first. Imports :mod:`pipelines.lake`,
:mod:`pipelines.privacy` (content scans before a border) and :mod:`pipelines.sovereignty`.
"""
