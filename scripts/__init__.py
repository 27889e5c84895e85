"""Project scripts run from make targets and tests (jar setup, the configuration schema)."""
