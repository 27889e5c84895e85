"""Dagster assets: thin wrappers that read, call an engine in pipelines/, write and report."""

from assets.bronze import bronze
from assets.features import demand_features
from assets.gold import gold_daily_demand
from assets.silver import silver_events

ASSETS = [bronze, silver_events, gold_daily_demand, demand_features]
