"""The lake: configuration, the table registry, schemas, object storage and Delta I/O.

Owns ``lakehouse.yaml``'s typed model (:mod:`.config`), the one registry of tables (:mod:`.tables`)
and their schemas (:mod:`.schemas`), object stores behind one interface (:mod:`.storage`:
local, S3, Azure, GCS), Delta reads, writes, exactly-once commits and rewrites (:mod:`.delta`),
and the heap bound long runs keep (:mod:`.memory`). Every other domain builds on it; it imports
none of them.
"""
