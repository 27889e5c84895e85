"""Dagster assets: thin wrappers that read, call an engine in pipelines/, write and report."""

from assets.bronze import bronze
from assets.features import demand_features
from assets.freshness import with_freshness
from assets.gold import gold_daily_demand
from assets.ml import demand_forecast, demand_model, feature_drift
from assets.replicas import REPLICAS
from assets.silver import silver_events

# Freshness policies are applied by group and key (assets/freshness.py).
ASSETS = with_freshness(
    [
        bronze,
        silver_events,
        gold_daily_demand,
        *REPLICAS,
        demand_features,
        demand_model,
        demand_forecast,
        feature_drift,
    ]
)
