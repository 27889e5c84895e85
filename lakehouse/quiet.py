"""Library output nobody can act on, filtered by name where it is emitted; the rest stays.

Each filter names one known, harmless message: a Dagster API this code location uses on
purpose whose beta or preview status was accepted, or a library's chatter. Anything else a
library warns about (a deprecation, a real failure) is still shown. Spark's JVM log lines are
quieted by its own log4j2 configuration (``pipelines/spark/session.py``), not here.
"""

from __future__ import annotations

import logging
import os
import warnings

# Dagster parameters and APIs used deliberately despite their beta/preview label.
DAGSTER_APIS = (r"Parameter `backfill_policy` of function `asset`",)
# MLflow's notes while the model is logged (pipelines/ml/tracking.py): the signature comes from
# the training frame, whose integer keys are never null; the dataset's source is the Delta
# table's URI, which two of MLflow's source kinds both accept.
MLFLOW_NOTES = (
    r"The specified dataset source can be interpreted in multiple ways",
    r"Hint: Inferred schema contains integer column",
)
# Loggers whose INFO lines are bookkeeping: py4j's connection chatter on every Spark call,
# MLflow creating its tables in a new store (and alembic's migration steps doing it).
CHATTY_LOGGERS = (
    "py4j",
    "py4j.clientserver",
    "py4j.java_gateway",
    "mlflow.store.db.utils",
    "alembic",
    # "Waiting up to 300 seconds for model version to finish creation" on every registration
    "mlflow.store.model_registry.abstract_store",
)
# MLflow draws a progress bar for every artifact download (a model, a reference sample), and
# with a tracking server prints two links per run on stdout (the summary names the server):
# the command's own progress says what runs.
QUIET_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def quiet_libraries() -> None:
    """Install the filters; calling again is harmless (``warnings`` keeps one of each).

    Not guarded by a flag: whoever resets the warning filters (``catch_warnings``, a test
    runner) gets them back at the next call.
    """
    from dagster import BetaWarning, PreviewWarning

    for api in DAGSTER_APIS:
        for category in (BetaWarning, PreviewWarning):
            warnings.filterwarnings("ignore", message=api, category=category)
    for note in MLFLOW_NOTES:
        warnings.filterwarnings("ignore", message=note, category=UserWarning)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)  # a user's own setting wins
