"""Which Dagster instance the project's commands use: the one ``make ui`` and ``make run`` use.

``DAGSTER_HOME`` when it is set; otherwise ``.dagster/`` under the project folder
(``LAKEHOUSE_HOME``, by default the checkout), which is where ``make`` points ``DAGSTER_HOME``
and where ``lakehouse demo`` keeps its instance. Commands say which one they used, so a
backfill stored in one instance is never looked for in another without a word.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.lake.config import lake_home
from pipelines.lake.config.environment import env

if TYPE_CHECKING:
    import dagster as dg

DAGSTER_HOME_ENV = "DAGSTER_HOME"
PROJECT_DEFAULT = "project default"


@dataclass(frozen=True)
class ProjectInstance:
    """A Dagster instance folder and why it was chosen."""

    home: Path
    source: str  # DAGSTER_HOME_ENV or PROJECT_DEFAULT

    def exists(self) -> bool:
        """True when the folder exists (``make setup`` or ``make run`` creates it)."""
        return self.home.is_dir()

    def describe(self) -> dict[str, str]:
        """The folder and where it came from, for a command's report."""
        return {"home": str(self.home), "source": self.source}

    def line(self) -> str:
        """One line for a person: the folder and why."""
        why = "DAGSTER_HOME" if self.source == DAGSTER_HOME_ENV else "DAGSTER_HOME unset"
        return f"Dagster instance {self.home} ({why})"

    def require(self) -> None:
        """Raise a one-line ValueError unless the folder exists (checked before any work)."""
        if self.home.exists() and not self.home.is_dir():
            raise ValueError(f"{self._named()} is a file, not a folder")
        if not self.home.is_dir():
            raise ValueError(
                f"{self._named()} is not an existing folder: `make setup` (or `make run`) "
                "creates the project's .dagster/; or export DAGSTER_HOME"
            )

    @contextmanager
    def open(self) -> Iterator[dg.DagsterInstance]:
        """The instance, which must exist: a command never creates one somewhere unexpected."""
        self.require()
        with open_instance(self.home) as instance:
            yield instance

    def _named(self) -> str:
        if self.source == DAGSTER_HOME_ENV:
            return f"DAGSTER_HOME={self.home}"
        return f"the project's Dagster instance {self.home} (DAGSTER_HOME unset)"


# In the instance folder: held while an instance is opened (its storage created or migrated).
OPEN_LOCK = ".lakehouse-open.lock"


def open_instance(home: Path) -> dg.DagsterInstance:
    """``DagsterInstance.from_config(home)``, one process at a time.

    Opening an instance whose folder has no database yet creates its SQLite storage and stamps
    its schema version; two processes doing it at once (two ingest workers started together on
    a fresh DAGSTER_HOME) leave two version rows, and every later open of the instance fails
    ("alembic_version has more than one head"). An exclusive lock on a file in the folder makes
    the second wait and find the storage made.
    """
    import fcntl

    import dagster as dg  # the engine commands that import this module never need Dagster

    with (home / OPEN_LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return dg.DagsterInstance.from_config(str(home))


def project_instance() -> ProjectInstance:
    """``DAGSTER_HOME`` when set, else the project's ``.dagster/`` (as ``make ui`` finds it)."""
    home = env(DAGSTER_HOME_ENV)
    if home:
        return ProjectInstance(Path(home).expanduser().resolve(), DAGSTER_HOME_ENV)
    return ProjectInstance(lake_home() / ".dagster", PROJECT_DEFAULT)
