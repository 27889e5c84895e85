"""ML: training, tracking and registry, drift statistics and monitoring.

Owns the forecast model's training and metrics (:mod:`.train`), MLflow tracking, lineage and
promotion (:mod:`.tracking`), vectorized drift statistics (:mod:`.drift`) and the drift verdicts
that ask for retraining (:mod:`.monitoring`). Imports only :mod:`pipelines.lake`.
"""
