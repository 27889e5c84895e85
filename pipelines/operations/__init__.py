"""Operations: health and cost, anomalies, advice, and table upkeep.

Owns per-region health measurement (:mod:`.health`), anomaly bands (:mod:`.anomaly`), the
recommendations that follow (:mod:`.advice`) and maintenance that respects replicas and model
lineage (:mod:`.maintenance`). The top domain: it reads what every other one writes.
"""
