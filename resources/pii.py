"""The pseudonymization key of silver's personal data, from ``LAKEHOUSE_PII_KEY``."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from pipelines.spark.transforms import PII_KEY_ENV, PiiKeyError


class PiiKeyResource(dg.ConfigurableResource):
    """HMAC-SHA256 key that pseudonymizes customer ids and emails in silver (EnvVar)."""

    key: str = Field(description=f"HMAC key; set from dg.EnvVar({PII_KEY_ENV!r}), never logged.")

    def secret(self) -> str:
        """The key; a clear error naming the variable when it is empty."""
        if not self.key:
            raise PiiKeyError(f"the pseudonymization key is empty: set {PII_KEY_ENV}")
        return self.key

    def __repr__(self) -> str:
        return "PiiKeyResource(key=<hidden>)"
