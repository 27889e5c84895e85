"""Dagster assets: thin wrappers that read, call an engine in pipelines/, write and report."""

from assets.bronze import bronze
from assets.replicas import REPLICAS

ASSETS = [bronze, *REPLICAS]
