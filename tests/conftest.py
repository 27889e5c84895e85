"""Shared fixtures: a private lake home per test, a pseudonymization key for the session."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def pii_key() -> Iterator[str]:
    """Silver's key, so that `pytest` works without `make` (which exports a demo key).

    Tests of a missing key delete it with monkeypatch.
    """
    patch = pytest.MonkeyPatch()
    if not os.environ.get("LAKEHOUSE_PII_KEY"):
        patch.setenv("LAKEHOUSE_PII_KEY", "test-only-pii-key")
    yield os.environ["LAKEHOUSE_PII_KEY"]
    patch.undo()


@pytest.fixture
def lake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point LAKEHOUSE_HOME at a fresh folder so local locations live under tmp_path."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_ENV", "local")
    return tmp_path
