"""Great Expectations suites per asset and the bridge to Dagster asset checks."""
