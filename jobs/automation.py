"""The sensors that evaluate the assets' automation conditions (assets/automation.py).

Their runs carry the routing tag (``compute.routing_tag``): ``any`` for runs of PII-free assets
(replicas, features, forecast, drift), ``shared`` for the Spark runs when one code location
serves every jurisdiction (silver and gold among them; each step checks its partitions'
jurisdiction). A sensor's tags are the same for every run, so a per-partition jurisdiction is
only possible where a plain sensor requests the runs (jobs/jurisdiction.py).
"""

import dagster as dg

from assets.automation import SPARK_TAG
from pipelines.lake.config import PER_JURISDICTION, LakeConfig
from pipelines.sovereignty import compute


def automation_sensors(cfg: LakeConfig) -> list[dg.AutomationConditionSensorDefinition]:
    """Two evaluators: Spark assets (tagged for the one-Spark-run limit) and the rest."""
    spark = dg.AssetSelection.kind("spark")
    tag = cfg.compute.routing_tag
    # per_jurisdiction: silver and gold have no condition here, the Spark runs left are PII-free
    spark_runs = compute.ANY if cfg.compute.pools == PER_JURISDICTION else compute.SHARED
    return [
        dg.AutomationConditionSensorDefinition(
            "spark_automation_sensor",
            target=spark,
            run_tags={SPARK_TAG: "true", tag: spark_runs},
            default_status=dg.DefaultSensorStatus.RUNNING,
            description="Runs silver, gold and features when their parents updated (Spark).",
        ),
        dg.AutomationConditionSensorDefinition(
            "automation_sensor",
            target=dg.AssetSelection.all() - spark,
            run_tags={tag: compute.ANY},
            default_status=dg.DefaultSensorStatus.RUNNING,
            description="Syncs replicas and scores forecasts and drift when parents updated.",
        ),
    ]
