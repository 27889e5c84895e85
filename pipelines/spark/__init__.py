"""Spark: the session, the transforms of silver, gold and features, and where they run.

Owns the session and Java checks (:mod:`.session`), the transforms (:mod:`.transforms`), the
steps as one entry point shared by every backend, each taking one :class:`.jobs.StepRequest`
(:mod:`.jobs`), and the Databricks job description (:mod:`.databricks`). Imports only
:mod:`pipelines.lake`.
"""
