"""Dagster assets: thin wrappers that read, call an engine in pipelines/, write and report."""

from assets.bronze import bronze
from assets.ml import demand_forecast, demand_model, feature_drift
from assets.replicas import REPLICAS

ASSETS = [bronze, *REPLICAS, demand_model, demand_forecast, feature_drift]
