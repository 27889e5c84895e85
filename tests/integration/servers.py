"""Helpers that start and stop servers on 127.0.0.1 for the integration tests.

One implementation: the emulators, ports and process handling live in devtools/emulators.py,
which ``make run-emulated`` uses too.
"""

from devtools.emulators import (
    AZURITE_CONN,
    free_port,
    stop,
    wait_for_port,
)
from pipelines.lake.config import PROJECT_ROOT as ROOT

__all__ = ["AZURITE_CONN", "ROOT", "free_port", "stop", "wait_for_port"]
