"""Quarantine reasons as they are counted: one rule for the ingest engine and the views.

Kept free of imports so ``lakehouse status`` and the health view can count reasons without
loading the engine's dataframe libraries.
"""

# Whole-object failures are counted by kind: the error's own words after the kind vary.
WHOLE_OBJECT_REASONS = ("corrupt_object", "ingest_error", "object_rewritten")


def reason_kind(reason: str) -> str:
    """A quarantine reason as counted: whole-object failures by kind, records by reason."""
    return next((k for k in WHOLE_OBJECT_REASONS if reason.startswith(k)), reason)
