"""Ingest: landed capture objects into bronze Delta, each object exactly once.

Owns the capture formats (:mod:`.capture`: Firehose, Event Hubs Capture, Pub/Sub), the event
contract and record rules (:mod:`.events`), how quarantine reasons are counted
(:mod:`.reasons`), parsing and validation of an object's records
(:mod:`.parse`), a batch of objects into bronze and quarantine rows, de-duplicated
(:mod:`.batch`), listing and reading a landing date (:mod:`.landing`), batch planning
(:mod:`.planning`), a partition's run, batch after batch (:mod:`.partition`), closed days'
compaction and the backlog check (:mod:`.closed_day`), the ledger that makes it exactly once
(:mod:`.ledger`) and the long-lived worker's loop (:mod:`.stream`). Imports only
:mod:`pipelines.lake`.
"""
