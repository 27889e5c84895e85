"""Dagster assets: thin wrappers that read, call an engine in pipelines/, write and report."""

from assets.bronze import bronze
from assets.freshness import with_freshness

# Freshness policies are applied by group and key (assets/freshness.py).
ASSETS = with_freshness([bronze])
