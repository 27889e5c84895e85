"""Erasure: a data subject's request served over every copy in its jurisdiction, with a receipt.

Owns the request and receipt tables (:mod:`.requests`), the rewrite of landing objects in their
capture formats with the ingest ledger kept consistent (:mod:`.landing`), and the serving of a
batch of requests over a location's personal tables, kept versions, checkpoints and landing area,
verified by an independent byte scan of every file (:mod:`.serve`), and the models trained on
a version it cost and the MLflow artifact store (:mod:`.models`). Above every other domain: it
erases what ingest and the Spark transforms wrote, and names the replicas and models that
pinned a version it cost (:mod:`pipelines.operations.maintenance`). Free of Dagster.
"""
