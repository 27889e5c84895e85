"""Shared fixtures: a private lake home per test, small simulations."""

import datetime as dt
import os
from pathlib import Path

import pytest

from pipelines.config import load_config
from pipelines.simulate import SimulationConfig, land_day
from pipelines.storage import open_storage

DAY = dt.date(2026, 10, 5)

# Silver's key, so that `pytest` works without `make` (which exports a demo key); tests of a
# missing key delete it with monkeypatch.
os.environ.setdefault("LAKEHOUSE_PII_KEY", "test-only-pii-key")


@pytest.fixture
def lake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point LAKEHOUSE_HOME at a fresh folder so local locations live under tmp_path."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_ENV", "local")
    return tmp_path


def land(location_name: str, sim: SimulationConfig, env: str = "local") -> list:
    """Land a simulation in one location of an environment; returns the day reports."""
    loc = load_config(env).location(location_name)
    storage = open_storage(loc.root_uri(), loc.storage_options())
    currency = load_config(env).regions[loc.region]["currency"]
    return [land_day(sim, loc, storage, day, currency) for day in sim.days()]
