"""Ingest: landed capture objects into bronze Delta, each object exactly once.

Owns the capture formats (:mod:`.capture`: Firehose, Event Hubs Capture, Pub/Sub), the event
contract and record rules (:mod:`.events`), parsing and validation of an object's records
(:mod:`.parse`), de-duplication, batching and compaction of a partition (:mod:`.engine`), and
the ledger that makes it exactly once (:mod:`.ledger`). Imports only :mod:`pipelines.lake`.
"""
