"""``erasure_receipts``: data subjects' erasure requests served, a receipt each, and a deadline.

A request waits in its location's ``erasure_requests`` table (``lakehouse erase --defer``, or any
writer of :func:`pipelines.erasure.requests.submit`). ``erasure_request_sensor`` (jobs/erasure.py)
asks for a run of this asset's partition of that location, on its jurisdiction's workers; the
asset serves every pending request there (:func:`pipelines.erasure.serve.serve_location`) and its
metadata carries each receipt (request id, keyed hash, counts; never an identifier). The
``erasure_deadline`` check fails while a request is older than ``privacy.erasure_deadline_days``
and not served, or served without the read-back finding the subject nowhere.
"""

import datetime as dt
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.keys import UNPREFIXED, Keys, rekeyed
from assets.sovereignty import PARTITIONED_BY, declare, require_jurisdiction
from data_quality import gx
from data_quality.suites import Suite
from pipelines.erasure import requests, serve
from pipelines.lake import delta, tables
from pipelines.lake.config import LakeConfig
from pipelines.lake.schemas import ERASURE_RECEIPT_SCHEMA
from pipelines.operations import maintenance
from resources.lake import LakeResource
from resources.mlflow import MLflowResource
from resources.pii import PiiKeyResource

ERASURE = tables.ERASURE_RECEIPTS.name
DEADLINE_CHECK = "erasure_deadline"
PERSONAL = tuple(t.name for t in tables.TABLES.values() if t.personal_data)
ERASURE_DATA = declare(reads=PERSONAL, writes=PERSONAL)


def served_locations(cfg: LakeConfig, keys: Keys = UNPREFIXED) -> list[str]:
    """The locations whose requests ``keys``' code location serves (every one when unprefixed)."""
    regions = set(keys.regions or cfg.region_codes)
    return sorted(n for n, loc in cfg.locations.items() if loc.region in regions)


def erasure_partitions(cfg: LakeConfig, keys: Keys = UNPREFIXED) -> dg.StaticPartitionsDefinition:
    """One partition per location: a request is served where the subject's region lives."""
    return dg.StaticPartitionsDefinition(served_locations(cfg, keys))


def build_erasure(cfg: LakeConfig, suite: Suite, keys: Keys = UNPREFIXED) -> dg.AssetsDefinition:
    """The asset that serves a location's pending erasure requests (``keys``: whose locations)."""
    key = keys.of(ERASURE)

    @dg.asset(
        key=key,
        partitions_def=erasure_partitions(cfg, keys),
        group_name="privacy",
        kinds={"delta"},
        tags={**ERASURE_DATA.tags(), PARTITIONED_BY: "location"},
        metadata=ERASURE_DATA.metadata(),
        check_specs=[gx.check_spec(suite, key)],
    )
    def erasure_receipts(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        pii: PiiKeyResource,
        mlflow: MLflowResource,
    ) -> dg.MaterializeResult:
        """Serves every pending erasure request of a location and writes a receipt for each."""
        loc = lake.location(context.partition_key)
        grants = require_jurisdiction(context, lake, ERASURE, [loc], ERASURE_DATA)
        options = lake.storage_options(loc)
        pending = requests.pending(loc, options)
        meta: dict[str, Any] = {**grants, "requests_served": len(pending)}
        if not pending:
            empty = ERASURE_RECEIPT_SCHEMA.empty_table()
            checked = list(rekeyed([gx.check(suite, empty)], [key]))
            return dg.MaterializeResult(metadata=meta, check_results=checked)
        track = mlflow.tracking()
        pins = maintenance.registry_pins(track, lake.config().maintenance)
        done = serve.serve_location(
            lake.config(),
            loc,
            pending,
            pii.secret(),
            options_for=lake.storage_options,
            model_pins_of=pins,
            tracking=track,
        )
        served = {r.request_id for r in pending}
        receipts = delta.open_table(loc.table_uri(ERASURE), options)
        rows = receipts.to_pyarrow_table() if receipts is not None else pa.table({})
        mine = rows.filter(pc.is_in(rows["request_id"], pa.array(sorted(served))))
        context.log.info(
            f"{len(pending)} erasure request(s) served at {loc.name}: "
            f"{done.files_rewritten} files rewritten, verified absent: {not done.read_back.found}"
        )
        meta.update(
            {
                "files_rewritten": done.files_rewritten,
                "bytes_rewritten": done.bytes_rewritten,
                "files_scanned": done.read_back.files_scanned,
                "bytes_scanned": done.read_back.bytes_scanned,
                "verified_absent": not done.read_back.found,
                # read by erased_model_retrain_sensor: a marked model asks for retraining
                "models_marked": len(done.models_marked),
                "retraining_due": dg.MetadataValue.json(done.retraining_due),
                "mlflow_artifacts": dg.MetadataValue.json(done.artifacts.as_dict()),
                "receipts": dg.MetadataValue.json(
                    [
                        {
                            k: r[k]
                            for k in (
                                "request_id",
                                "subject_hash",
                                "files_holding_subject",
                                "verified_absent",
                            )
                        }
                        for r in mine.to_pylist()
                    ]
                ),
                "dagster/row_count": mine.num_rows,
            }
        )
        checked = list(rekeyed([gx.check(suite, mine)], [key]))
        return dg.MaterializeResult(metadata=meta, check_results=checked)

    return erasure_receipts


def build_deadline_check(cfg: LakeConfig, keys: Keys = UNPREFIXED) -> dg.AssetChecksDefinition:
    """Fails while a request waits past ``privacy.erasure_deadline_days`` or was not verified.

    Over the locations ``keys``' code location serves (its jurisdiction's, or every one).
    """
    days = cfg.privacy.erasure_deadline_days
    served = served_locations(cfg, keys)

    @dg.asset_check(
        asset=keys.of(ERASURE),
        name=DEADLINE_CHECK,
        description=f"No erasure request waits more than {days} days (privacy."
        "erasure_deadline_days) or was served without the read-back finding it nowhere.",
    )
    def erasure_deadline(lake: LakeResource) -> dg.AssetCheckResult:
        """Fails while an erasure request is past its deadline or was not verified."""
        now = dt.datetime.now(dt.UTC)
        late: list[dict[str, Any]] = []
        unverified: list[str] = []
        waiting = 0
        for loc in (lake.location(name) for name in served):
            options = lake.storage_options(loc)
            # request ids and times only: the check reads no identifier
            waiting += len(requests.waiting(loc, options))
            late += [
                {"request_id": i, "location": loc.name, "age_days": age}
                for i, age in requests.overdue(loc, options, days, now)
            ]
            unverified += requests.unverified(loc, options)
        return dg.AssetCheckResult(
            passed=not late and not unverified,
            metadata={
                "deadline_days": days,
                "pending": waiting,
                "overdue": dg.MetadataValue.json(late),
                "unverified": dg.MetadataValue.json(unverified),
            },
        )

    return erasure_deadline
