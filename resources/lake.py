"""The lake resource: every asset's one way to reach a lake location's tables and objects."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
import pyarrow as pa
from pydantic import Field

from pipelines.lake import delta
from pipelines.lake.config import LakeConfig, LakeLocation, load_config
from pipelines.lake.storage import Storage, open_storage

_SECRET_KEYS = {
    "aws": {
        "aws_access_key_id": "AWS_ACCESS_KEY_ID",
        "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    },
    "azure": {"azure_storage_account_key": "AZURE_STORAGE_ACCOUNT_KEY"},
    "gcp": {"google_service_account": "GOOGLE_SERVICE_ACCOUNT"},
}


class LakeResource(dg.ConfigurableResource):
    """Lake locations of one environment: Delta tables and landing objects per location."""

    environment: str = Field(default="local", description="Environment in lakehouse.yaml.")
    aws_access_key_id: str | None = Field(default=None, description="S3 key id (EnvVar).")
    aws_secret_access_key: str | None = Field(default=None, description="S3 secret (EnvVar).")
    azure_storage_account_key: str | None = Field(default=None, description="ADLS key (EnvVar).")
    google_service_account: str | None = Field(
        default=None, description="Path of a GCS service-account JSON (EnvVar)."
    )

    def config(self) -> LakeConfig:
        """The environment's configuration from lakehouse.yaml."""
        return load_config(self.environment)

    def location(self, name: str) -> LakeLocation:
        """A location by name."""
        return self.config().location(name)

    def location_for_region(self, region: str) -> LakeLocation:
        """The location holding a region's data."""
        return self.config().location_for_region(region)

    def storage_options(self, location: LakeLocation) -> dict[str, str]:
        """deltalake/obstore options for a location, secrets from this resource merged in."""
        secrets = {
            option: getattr(self, field)
            for field, option in _SECRET_KEYS.get(location.cloud, {}).items()
            if getattr(self, field)
        }
        return location.storage_options(secrets)

    def storage(self, location: LakeLocation) -> Storage:
        """Object storage rooted at the location."""
        return open_storage(location.root_uri(), self.storage_options(location))

    def table_uri(self, location: LakeLocation, table: str) -> str:
        """URI of a Delta table at a location."""
        return location.table_uri(table)

    def table_version(self, location: LakeLocation, table: str) -> int | None:
        """Latest version of a table, None when it does not exist yet."""
        return delta.table_version(location.table_uri(table), self.storage_options(location))

    def write_partition(
        self,
        location: LakeLocation,
        table: str,
        data: pa.Table,
        partition: Mapping[str, object],
        partition_by: list[str] | None = None,
    ) -> int:
        """Replace one partition of a table with ``data``; return the new table version."""
        return delta.write_partition(
            location.table_uri(table),
            data,
            partition,
            self.storage_options(location),
            partition_by=partition_by,
        )

    def storage_options_of(self) -> dict[str, dict[str, str]]:
        """Storage options of every location, by name (what a Spark job needs)."""
        return {name: self.storage_options(loc) for name, loc in self.config().locations.items()}

    def read_partition(
        self,
        location: LakeLocation,
        table: str,
        partition: Mapping[str, object] | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Rows of a table or of one of its partitions, as Arrow."""
        return delta.read_partition(
            location.table_uri(table), self.storage_options(location), partition, columns
        )
